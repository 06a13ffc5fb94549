import { Badge, Button, Group, PasswordInput, SegmentedControl, Stack, Table, Text, TextInput } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { FormModal } from "../../components/FormModal";
import type { Schemas } from "../../api/types";
import { QrCodeModal } from "./QrCode";

type Config = Schemas["ConfigOut"];
type CreateIn = Schemas["ConfigCreateIn"];
type TestOut = Schemas["ConfigTestOut"];

const EMPTY: Record<string, string> = {};
const OFFICIAL_FIELDS = [
  ["phone_number_id", "settings.numbers.phoneNumberId"],
  ["business_account_id", "settings.numbers.businessAccountId"],
  ["access_token", "settings.numbers.accessToken"],
  ["app_secret", "settings.numbers.appSecret"],
  ["webhook_verify_token", "settings.numbers.verifyToken"],
] as const;
const EVOLUTION_FIELDS = [
  ["evolution_url", "settings.numbers.evolutionUrl"],
  ["evolution_api_key", "settings.numbers.evolutionKey"],
  ["instance_name", "settings.numbers.instanceName"],
] as const;
const SECRET = new Set(["access_token", "app_secret", "evolution_api_key"]);

export function Numbers() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const configs = useQuery({
    queryKey: ["numbers"],
    queryFn: () => unwrap(api.GET("/v1/whatsapp-configs", { params: { query: { limit: 100 } } })),
  });
  const [opened, setOpened] = useState(false);
  const [provider, setProvider] = useState<CreateIn["provider"]>("official");
  const [name, setName] = useState("");
  const [fields, setFields] = useState<Record<string, string>>(EMPTY);
  const [results, setResults] = useState<Record<string, TestOut | ApiError>>({});
  const [scanning, setScanning] = useState<Config | null>(null);
  const invalidate = () => void client.invalidateQueries({ queryKey: ["numbers"] });
  const create = useMutation({
    mutationFn: () => {
      const given = Object.fromEntries(Object.entries(fields).filter(([, v]) => v.trim() !== ""));
      return unwrap(api.POST("/v1/whatsapp-configs", { body: { name, provider, ...given } as CreateIn }));
    },
    onSuccess: () => {
      setOpened(false);
      setName("");
      setFields(EMPTY);
      invalidate();
    },
  });
  const test = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/v1/whatsapp-configs/{config_id}/test", { params: { path: { config_id: id } } })),
    onSuccess: (result, id) => setResults((r) => ({ ...r, [id]: result })),
    onError: (err, id) => err instanceof ApiError && setResults((r) => ({ ...r, [id]: err })),
  });
  const makeDefault = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/v1/whatsapp-configs/{config_id}/set-default", { params: { path: { config_id: id } } })),
    onSuccess: invalidate,
  });
  const error = create.error instanceof ApiError ? create.error : null;
  const shown = provider === "official" ? OFFICIAL_FIELDS : EVOLUTION_FIELDS;

  return (
    <Stack gap="sm">
      <Text size="sm">{t("settings.numbers.intro")}</Text>
      <Group>
        <Button onClick={() => setOpened(true)}>{t("settings.numbers.add")}</Button>
      </Group>
      {configs.data?.data.length === 0 && <Text c="dimmed">{t("settings.numbers.none")}</Text>}
      {configs.data && configs.data.data.length > 0 && (
        <Table.ScrollContainer minWidth={720}>
          <Table striped aria-label={t("settings.numbers.intro")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("settings.name")}</Table.Th>
                <Table.Th>{t("settings.numbers.provider")}</Table.Th>
                <Table.Th>{t("settings.numbers.displayPhone")}</Table.Th>
                <Table.Th>{t("settings.numbers.health")}</Table.Th>
                <Table.Th>{t("settings.actions")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {configs.data.data.map((c) => (
                <NumberRow
                  key={c.id}
                  config={c}
                  result={results[c.id]}
                  onTest={() => test.mutate(c.id)}
                  testing={test.isPending && test.variables === c.id}
                  onDefault={() => makeDefault.mutate(c.id)}
                  onQr={() => setScanning(c)}
                />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {scanning && <QrCodeModal config={scanning} onClose={() => setScanning(null)} />}
      <FormModal opened={opened} onClose={() => setOpened(false)} title={t("settings.numbers.add")} size="lg" error={error} onSubmit={() => create.mutate()}>
            <SegmentedControl
              aria-label={t("settings.numbers.provider")}
              value={provider}
              onChange={(v) => setProvider(v as CreateIn["provider"])}
              data={[
                { value: "official", label: t("settings.numbers.official") },
                { value: "evolution", label: t("settings.numbers.evolution") },
              ]}
            />
            <TextInput
              label={t("settings.name")}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={error?.fieldMessage("name")}
              data-autofocus
            />
            {shown.map(([field, label]) => {
              const Input = SECRET.has(field) ? PasswordInput : TextInput;
              return (
                <Input
                  key={field}
                  label={t(label)}
                  value={fields[field] ?? ""}
                  onChange={(e) => {
                    const value = e.currentTarget.value;
                    setFields((f) => ({ ...f, [field]: value }));
                  }}
                  error={error?.fieldMessage(field)}
                  {...(SECRET.has(field) ? { visibilityToggleButtonProps: { "aria-label": t("auth.showPassword") } } : {})}
                />
              );
            })}
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                {t("settings.cancel")}
              </Button>
              <Button type="submit" loading={create.isPending}>
                {t("settings.numbers.add")}
              </Button>
            </Group>
      </FormModal>
    </Stack>
  );
}

interface RowProps {
  config: Config;
  result: TestOut | ApiError | undefined;
  testing: boolean;
  onTest: () => void;
  onDefault: () => void;
  onQr: () => void;
}

function NumberRow({ config: c, result, testing, onTest, onDefault, onQr }: RowProps) {
  const { t } = useTranslation();
  const failed = result instanceof ApiError ? result.message : result && !result.success ? result.message : null;
  return (
    <Table.Tr>
      <Table.Td>
        <Group gap={6}>
          {c.name}
          {c.is_default && <Badge variant="light">{t("settings.numbers.default")}</Badge>}
        </Group>
      </Table.Td>
      <Table.Td>{c.provider === "official" ? t("settings.numbers.official") : t("settings.numbers.evolution")}</Table.Td>
      <Table.Td>{c.display_phone_number ?? c.instance_name ?? ""}</Table.Td>
      <Table.Td>
        <Stack gap={2}>
          <Text size="sm">{c.health_status ?? ""}</Text>
          {result && !failed && (
            <Text size="xs" c="teal.9" role="status">
              {t("settings.numbers.testOk")}
            </Text>
          )}
          {failed && (
            <Text size="xs" c="red.8" role="status">
              {t("settings.numbers.testFailed", { message: failed })}
            </Text>
          )}
        </Stack>
      </Table.Td>
      <Table.Td>
        <Group gap="xs">
          <Button size="xs" variant="light" loading={testing} onClick={onTest} aria-label={t("settings.numbers.testNamed", { name: c.name })}>
            {t("settings.numbers.test")}
          </Button>
          {c.provider === "evolution" && (
            <Button size="xs" variant="light" onClick={onQr} aria-label={t("settings.numbers.showQrNamed", { name: c.name })}>
              {t("settings.numbers.showQr")}
            </Button>
          )}
          {!c.is_default && (
            <Button size="xs" variant="default" onClick={onDefault} aria-label={t("settings.numbers.setDefaultNamed", { name: c.name })}>
              {t("settings.numbers.setDefault")}
            </Button>
          )}
        </Group>
      </Table.Td>
    </Table.Tr>
  );
}
