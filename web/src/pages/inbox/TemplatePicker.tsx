import { Alert, Button, Paper, Select, SimpleGrid, Stack, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import type { Schemas } from "../../api/types";
import classes from "./inbox.module.css";
import { useSendReply } from "./ReplyBox";

type Template = Schemas["TemplateOut"];

/** With the window closed: pick an approved template, fill its variables, see it, send it. */
export function TemplatePicker({ conversationId }: { conversationId: string }) {
  const { t } = useTranslation();
  const templates = useQuery({
    queryKey: ["templates", "APPROVED"],
    staleTime: 60_000,
    queryFn: () =>
      unwrap(api.GET("/v1/templates", { params: { query: { status: "APPROVED", limit: 100 } } })),
  });
  const [chosenId, setChosenId] = useState<string | null>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const chosen: Template | undefined = templates.data?.data.find((x) => x.id === chosenId);
  const [debounced] = useDebouncedValue(values, 250);
  const variables = useMemo(
    () => Object.fromEntries(Object.entries(debounced).filter(([, v]) => v !== "")),
    [debounced],
  );
  const preview = useQuery({
    queryKey: ["template-preview", chosenId, variables],
    enabled: Boolean(chosen),
    queryFn: () =>
      unwrap(
        api.POST("/v1/templates/{template_id}/preview", {

          params: { path: { template_id: chosenId! } },
          body: { variables },
        }),
      ),
  });
  const send = useSendReply(conversationId);
  const error = send.error instanceof ApiError ? send.error : null;
  const sendable = preview.data?.message;

  const options = (templates.data?.data ?? []).map((x) => ({
    value: x.id,
    label: `${x.name} (${x.language})`,
  }));

  return (
    <Stack gap="xs" p="sm" className={classes.composer}>
      <Alert color="yellow" p="xs">
        {t("inbox.windowClosed")}
      </Alert>
      {templates.isSuccess && options.length === 0 ? (
        <Text size="sm">{t("inbox.noTemplates")}</Text>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (sendable && chosen) {
              send.mutate(
                { type: "template", template: sendable as Schemas["TemplateIn"] },
                { onSuccess: () => setValues({}) },
              );
            }
          }}
        >
          <Stack gap="xs">
            <Select
              label={t("inbox.template")}
              placeholder={t("inbox.chooseTemplate")}
              data={options}
              value={chosenId}
              searchable
              onChange={(id) => {
                setChosenId(id);
                setValues({});
              }}
            />
            {chosen && chosen.variables.length > 0 && (
              <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
                {chosen.variables.map((name) => (
                  <TextInput
                    key={name}
                    size="xs"
                    label={t("inbox.variable", { name })}
                    value={values[name] ?? ""}
                    onChange={(e) => {
                      const value = e.currentTarget.value;
                      setValues((v) => ({ ...v, [name]: value }));
                    }}
                  />
                ))}
              </SimpleGrid>
            )}
            {chosen && preview.data && (
              <Paper withBorder p="xs" aria-label={t("inbox.preview")} role="region">
                <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
                  {preview.data.text}
                </Text>
              </Paper>
            )}
            {error && (
              <Text size="sm" c="red.8" role="alert">
                {error.message}
              </Text>
            )}
            {chosen && (
              <Button type="submit" disabled={!sendable} loading={send.isPending}>
                {t("inbox.sendTemplate")}
              </Button>
            )}
          </Stack>
        </form>
      )}
    </Stack>
  );
}
