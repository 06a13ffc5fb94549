import { Alert, Progress, Stack, Table, Text } from "@mantine/core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";

export interface ImportState {
  jobId: string | null;
  error: ApiError | null;
  start: (file: File) => void;
}

/** Upload a CSV and follow its import job. */
export function useImport(): ImportState {
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const start = (file: File) => {
    setError(null);
    void unwrap(
      api.POST("/v1/contacts/import", {
        body: { file: file as unknown as string },
        bodySerializer: () => {
          const form = new FormData();
          form.append("file", file);
          return form;
        },
      }),
    )
      .then((job) => setJobId(job.id))
      .catch((err: unknown) => setError(err instanceof ApiError ? err : new ApiError(0, "network", String(err))));
  };
  return { jobId, error, start };
}

export function ImportProgress({ state }: { state: ImportState }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const job = useQuery({
    queryKey: ["import", state.jobId],
    enabled: Boolean(state.jobId),
    queryFn: async () => {
      const out = await unwrap(
        api.GET("/v1/contacts/import/{job_id}", { params: { path: { job_id: state.jobId! } } }),
      );
      if (out.status === "completed" || out.status === "failed") {
        void client.invalidateQueries({ queryKey: ["contacts"] });
        void client.invalidateQueries({ queryKey: ["tags"] });
      }
      return out;
    },
    refetchInterval: (q) => (q.state.data && ["completed", "failed"].includes(q.state.data.status) ? false : 500),
  });
  if (state.error) {
    return (
      <Alert color="red" role="alert">
        {state.error.message}
      </Alert>
    );
  }
  const j = job.data;
  if (!j) return null;
  const done = j.status === "completed";
  return (
    <Stack gap="xs" role="status">
      <Text size="sm">{t("contacts.importing", { file: j.filename })}</Text>
      <Progress value={Math.round(j.progress * 100)} aria-label={t("contacts.importProgress")} animated={!done && j.status !== "failed"} />
      {done && (
        <Text size="sm">
          {t("contacts.importDone", { created: j.created, updated: j.updated, failed: j.failed })}
        </Text>
      )}
      {j.status === "failed" && (
        <Text size="sm" c="red.8">
          {t("contacts.importFailed", { error: j.error ?? "" })}
        </Text>
      )}
      {j.errors.length > 0 && (
        <Table aria-label={t("contacts.failedRows")}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{t("contacts.row")}</Table.Th>
              <Table.Th>{t("contacts.number")}</Table.Th>
              <Table.Th>{t("contacts.field")}</Table.Th>
              <Table.Th>{t("contacts.reason")}</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {j.errors.map((e) => (
              <Table.Tr key={e.row}>
                <Table.Td>{e.row}</Table.Td>
                <Table.Td>{e.whatsapp_id ?? ""}</Table.Td>
                <Table.Td>{e.field ?? ""}</Table.Td>
                <Table.Td>{e.reason}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
