import { Alert, Anchor, Badge, Button, Checkbox, Code, CopyButton, Group, SimpleGrid, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, Route, Routes, useParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { FormModal } from "../../components/FormModal";
import type { Schemas } from "../../api/types";
import { confirmed } from "../../lib/confirm";
import { formatDate } from "../../lib/format";

type EventName = Schemas["WebhookCreateIn"]["events"][number];
// Every event the API offers: the Record makes the compiler name any one left out.
const EVENT_SET: Record<EventName, true> = {
  "message.received": true,
  "message.sent": true,
  "message.delivered": true,
  "message.read": true,
  "message.failed": true,
  "conversation.created": true,
  "conversation.assigned": true,
  "conversation.resolved": true,
  "contact.created": true,
  "contact.updated": true,
  "template.updated": true,
};
const EVENTS = Object.keys(EVENT_SET) as EventName[];

export function Webhooks() {
  return (
    <Routes>
      <Route index element={<WebhookList />} />
      <Route path=":webhookId" element={<Deliveries />} />
    </Routes>
  );
}

function WebhookList() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const hooks = useQuery({
    queryKey: ["webhooks"],
    queryFn: () => unwrap(api.GET("/v1/webhooks", { params: { query: { limit: 100 } } })),
  });
  const [opened, setOpened] = useState(false);
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [events, setEvents] = useState<string[]>(["message.received"]);
  const [secret, setSecret] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/v1/webhooks", {
          body: { url, description: description || null, events: events as EventName[], is_active: true },
        }),
      ),
    onSuccess: (hook) => {
      setSecret(hook.secret ?? null);
      setOpened(false);
      setUrl("");
      setDescription("");
      void client.invalidateQueries({ queryKey: ["webhooks"] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["webhooks"] }),
  });
  const error = create.error instanceof ApiError ? create.error : null;

  return (
    <Stack gap="sm">
      <Text size="sm">{t("settings.hooks.intro")}</Text>
      <Group>
        <Button onClick={() => setOpened(true)}>{t("settings.hooks.create")}</Button>
      </Group>
      {secret && (
        <Alert color="teal" role="status">
          <Stack gap="xs">
            <Text size="sm">{t("settings.hooks.secretOnce")}</Text>
            <Code block>{secret}</Code>
            <CopyButton value={secret}>
              {({ copied, copy }) => (
                <Button size="xs" variant="light" onClick={copy} w="fit-content">
                  {copied ? t("settings.keys.copied") : t("settings.hooks.copySecret")}
                </Button>
              )}
            </CopyButton>
          </Stack>
        </Alert>
      )}
      {hooks.data?.data.length === 0 && <Text c="dimmed">{t("settings.hooks.none")}</Text>}
      {hooks.data && hooks.data.data.length > 0 && (
        <Table.ScrollContainer minWidth={640}>
          <Table striped aria-label={t("settings.webhooks")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("settings.hooks.url")}</Table.Th>
                <Table.Th>{t("settings.hooks.events")}</Table.Th>
                <Table.Th>{t("settings.hooks.status")}</Table.Th>
                <Table.Th>{t("settings.actions")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {hooks.data.data.map((hook) => (
                <Table.Tr key={hook.id}>
                  <Table.Td style={{ wordBreak: "break-all" }}>
                    <Anchor component={Link} to={hook.id} aria-label={t("settings.hooks.showDeliveries", { url: hook.url })}>
                      {hook.url}
                    </Anchor>
                    {hook.description && (
                      <Text size="xs" c="dimmed">
                        {hook.description}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>{hook.events.join(", ")}</Table.Td>
                  <Table.Td>
                    <Badge color={hook.is_active ? "teal" : "gray"} variant="light">
                      {hook.is_active ? t("settings.hooks.active") : t("settings.hooks.disabled")}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Button
                      size="xs"
                      color="red"
                      variant="light"
                      aria-label={t("settings.hooks.deleteNamed", { url: hook.url })}
                      onClick={() => confirmed(t("settings.hooks.confirmDelete", { url: hook.url })) && remove.mutate(hook.id)}
                    >
                      {t("settings.hooks.delete")}
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <FormModal opened={opened} onClose={() => setOpened(false)} title={t("settings.hooks.create")} size="lg" error={error} onSubmit={() => create.mutate()}>
            <TextInput
              label={t("settings.hooks.url")}
              type="url"
              value={url}
              onChange={(e) => setUrl(e.currentTarget.value)}
              error={error?.fieldMessage("url")}
              data-autofocus
            />
            <TextInput
              label={t("settings.hooks.description")}
              value={description}
              onChange={(e) => setDescription(e.currentTarget.value)}
              error={error?.fieldMessage("description")}
            />
            <Checkbox.Group label={t("settings.hooks.events")} value={events} onChange={setEvents} error={error?.fieldMessage("events")}>
              <SimpleGrid cols={{ base: 1, sm: 2 }} mt="xs" spacing="xs">
                {EVENTS.map((e) => (
                  <Checkbox key={e} value={e} label={e} />
                ))}
              </SimpleGrid>
            </Checkbox.Group>
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                {t("settings.cancel")}
              </Button>
              <Button type="submit" loading={create.isPending}>
                {t("settings.hooks.create")}
              </Button>
            </Group>
      </FormModal>
    </Stack>
  );
}

function Deliveries() {
  const { t, i18n } = useTranslation();
  const { webhookId = "" } = useParams();
  const client = useQueryClient();
  const path = { webhook_id: webhookId };
  const hook = useQuery({
    queryKey: ["webhook", webhookId],
    queryFn: () => unwrap(api.GET("/v1/webhooks/{webhook_id}", { params: { path } })),
  });
  const deliveries = useQuery({
    queryKey: ["deliveries", webhookId],
    queryFn: () =>
      unwrap(api.GET("/v1/webhooks/{webhook_id}/deliveries", { params: { path, query: { limit: 50 } } })),
    // Follow deliveries still on their way.
    refetchInterval: (q) =>
      q.state.data?.data.some((d) => d.status === "pending" || d.status === "delivering") ? 1000 : false,
  });
  const refresh = () => void client.invalidateQueries({ queryKey: ["deliveries", webhookId] });
  const ping = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/webhooks/{webhook_id}/test", { params: { path } })),
    onSuccess: refresh,
  });
  const redeliver = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/v1/webhooks/deliveries/{delivery_id}/redeliver", { params: { path: { delivery_id: id } } })),
    onSuccess: refresh,
  });
  const url = hook.data?.url ?? "";

  return (
    <Stack gap="sm">
      <Anchor component={Link} to="/settings/webhooks" size="sm">
        {t("settings.webhooks")}
      </Anchor>
      <Title order={3} size="h4" style={{ wordBreak: "break-all" }}>
        {t("settings.hooks.deliveriesOf", { url })}
      </Title>
      <Group>
        <Button onClick={() => ping.mutate()} loading={ping.isPending}>
          {t("settings.hooks.test")}
        </Button>
        <Button variant="default" onClick={refresh}>
          {t("settings.hooks.refresh")}
        </Button>
      </Group>
      {deliveries.data?.data.length === 0 && <Text c="dimmed">{t("settings.hooks.noDeliveries")}</Text>}
      {deliveries.data && deliveries.data.data.length > 0 && (
        <Table.ScrollContainer minWidth={720}>
          <Table striped aria-label={t("settings.hooks.deliveries")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("settings.hooks.when")}</Table.Th>
                <Table.Th>{t("settings.hooks.event")}</Table.Th>
                <Table.Th>{t("settings.hooks.status")}</Table.Th>
                <Table.Th>{t("settings.hooks.attempts")}</Table.Th>
                <Table.Th>{t("settings.hooks.response")}</Table.Th>
                <Table.Th>{t("settings.hooks.excerpt")}</Table.Th>
                <Table.Th>{t("settings.actions")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {deliveries.data.data.map((d) => (
                <Table.Tr key={d.id} data-delivery-status={d.status}>
                  <Table.Td>{formatDate(d.created_at, i18n.language)}</Table.Td>
                  <Table.Td>{d.event}</Table.Td>
                  <Table.Td>
                    <Badge
                      variant="light"
                      color={d.status === "delivered" ? "teal" : d.status === "failed" ? "red" : "gray"}
                    >
                      {t(`settings.hooks.statuses.${d.status}`)}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{d.attempts}</Table.Td>
                  <Table.Td>{d.response_status ?? d.error ?? ""}</Table.Td>
                  <Table.Td>
                    <Text size="xs" lineClamp={2} style={{ wordBreak: "break-all" }}>
                      {d.response_excerpt ?? ""}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Button size="xs" variant="light" onClick={() => redeliver.mutate(d.id)}>
                      {t("settings.hooks.redeliver")}
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
