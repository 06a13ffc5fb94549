import { Alert, Button, Checkbox, Code, CopyButton, Group, SimpleGrid, Stack, Table, Text, TextInput } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { FormModal } from "../../components/FormModal";
import type { Schemas } from "../../api/types";
import { confirmed } from "../../lib/confirm";
import { formatDate } from "../../lib/format";

type Created = Schemas["ApiKeyCreatedOut"];

export function ApiKeys() {
  const { t, i18n } = useTranslation();
  const client = useQueryClient();
  const keys = useQuery({ queryKey: ["api-keys"], queryFn: () => unwrap(api.GET("/v1/api-keys")) });
  const scopes = useQuery({
    queryKey: ["scopes"],
    staleTime: Infinity,
    queryFn: () => unwrap(api.GET("/v1/api-keys/scopes")),
  });
  const [opened, setOpened] = useState(false);
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [created, setCreated] = useState<Created | null>(null);
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/api-keys", { body: { name, scopes: chosen } })),
    onSuccess: (key) => {
      setCreated(key);
      setOpened(false);
      setName("");
      setChosen([]);
      void client.invalidateQueries({ queryKey: ["api-keys"] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["api-keys"] }),
  });
  const error = create.error instanceof ApiError ? create.error : null;

  return (
    <Stack gap="sm">
      <Text size="sm">{t("settings.keys.intro")}</Text>
      <Group>
        <Button onClick={() => setOpened(true)}>{t("settings.keys.create")}</Button>
      </Group>
      {created && (
        <Alert color="teal" title={t("settings.keys.newKey")} role="status">
          <Stack gap="xs">
            <Text size="sm">{t("settings.keys.shownOnce")}</Text>
            <Code block aria-label={t("settings.keys.newKey")}>
              {created.key}
            </Code>
            <Group>
              <CopyButton value={created.key}>
                {({ copied, copy }) => (
                  <Button size="xs" variant="light" onClick={copy}>
                    {copied ? t("settings.keys.copied") : t("settings.keys.copy")}
                  </Button>
                )}
              </CopyButton>
              <Button size="xs" variant="default" onClick={() => setCreated(null)}>
                {t("settings.keys.done")}
              </Button>
            </Group>
          </Stack>
        </Alert>
      )}
      {keys.data && keys.data.data.length === 0 && <Text c="dimmed">{t("settings.keys.none")}</Text>}
      {keys.data && keys.data.data.length > 0 && (
        <Table.ScrollContainer minWidth={640}>
          <Table striped aria-label={t("settings.apiKeys")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("settings.name")}</Table.Th>
                <Table.Th>{t("settings.keys.prefix")}</Table.Th>
                <Table.Th>{t("settings.keys.scopes")}</Table.Th>
                <Table.Th>{t("settings.keys.lastUsed")}</Table.Th>
                <Table.Th>{t("settings.actions")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {keys.data.data.map((key) => (
                <Table.Tr key={key.id}>
                  <Table.Td>{key.name}</Table.Td>
                  <Table.Td>
                    <Code>{key.prefix}</Code>
                  </Table.Td>
                  <Table.Td>{key.scopes.join(", ")}</Table.Td>
                  <Table.Td>{key.last_used_at ? formatDate(key.last_used_at, i18n.language) : t("settings.never")}</Table.Td>
                  <Table.Td>
                    <Button
                      size="xs"
                      color="red"
                      variant="light"
                      aria-label={t("settings.keys.revokeNamed", { name: key.name })}
                      onClick={() => confirmed(t("settings.keys.confirmRevoke", { name: key.name })) && revoke.mutate(key.id)}
                    >
                      {t("settings.keys.revoke")}
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <FormModal opened={opened} onClose={() => setOpened(false)} title={t("settings.keys.create")} size="lg" error={error} onSubmit={() => create.mutate()}>
            <TextInput
              label={t("settings.name")}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={error?.fieldMessage("name")}
              data-autofocus
            />
            <Checkbox.Group
              label={t("settings.keys.scopes")}
              value={chosen}
              onChange={setChosen}
              error={error?.fieldMessage("scopes")}
            >
              <SimpleGrid cols={{ base: 1, sm: 2 }} mt="xs" spacing="xs">
                {(scopes.data?.data ?? []).map((s) => (
                  <Checkbox key={s.name} value={s.name} label={s.name} description={s.description} />
                ))}
              </SimpleGrid>
            </Checkbox.Group>
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                {t("settings.cancel")}
              </Button>
              <Button type="submit" loading={create.isPending}>
                {t("settings.keys.create")}
              </Button>
            </Group>
      </FormModal>
    </Stack>
  );
}
