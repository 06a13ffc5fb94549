import { Anchor, Badge, Button, FileButton, Group, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api, unwrap } from "../../api/client";
import { ImportProgress, useImport } from "./ImportProgress";

const PAGE = 50;

export function ContactTable() {
  const { t } = useTranslation();
  const [search, setSearch] = useState("");
  const [debounced] = useDebouncedValue(search, 300);
  const [tag, setTag] = useState<string | null>(null);
  // Cursor paging: the cursors of the pages before this one, to step back.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const filter = { search: debounced || undefined, tags: tag ? [tag] : undefined };
  const contacts = useQuery({
    queryKey: ["contacts", filter, cursor],
    placeholderData: keepPreviousData,
    queryFn: () =>
      unwrap(
        api.GET("/v1/contacts", {
          params: { query: { ...filter, limit: PAGE, ...(cursor ? { cursor } : {}) } },
        }),
      ),
  });
  const tags = useQuery({ queryKey: ["tags"], queryFn: () => unwrap(api.GET("/v1/tags")) });
  const importer = useImport();
  const [exporting, setExporting] = useState(false);
  const resetPaging = () => setCursors([null]);

  const exportCsv = async () => {
    setExporting(true);
    try {
      const { data } = await api.GET("/v1/contacts/export", { params: { query: filter }, parseAs: "blob" });
      if (data) {
        const link = document.createElement("a");
        link.href = URL.createObjectURL(data as Blob);
        link.download = "contacts.csv";
        link.click();
        setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      }
    } finally {
      setExporting(false);
    }
  };

  const meta = contacts.data?.meta;
  return (
    <Stack p="md" gap="sm">
      <Group justify="space-between">
        <Title order={2}>{t("contacts.title")}</Title>
        <Group gap="xs">
          <Button component={Link} to="new">
            {t("contacts.new")}
          </Button>
          <FileButton onChange={(file) => file && importer.start(file)} accept=".csv,text/csv">
            {(props) => (
              <Button variant="default" {...props}>
                {t("contacts.import")}
              </Button>
            )}
          </FileButton>
          <Button variant="default" onClick={() => void exportCsv()} loading={exporting}>
            {t("contacts.export")}
          </Button>
        </Group>
      </Group>
      <ImportProgress state={importer} />
      <Group grow align="flex-end">
        <TextInput
          type="search"
          label={t("contacts.search")}
          placeholder={t("contacts.searchPlaceholder")}
          value={search}
          onChange={(e) => {
            setSearch(e.currentTarget.value);
            resetPaging();
          }}
        />
        <Select
          label={t("contacts.tag")}
          placeholder={t("contacts.anyTag")}
          clearable
          searchable
          data={(tags.data ?? []).map((x) => x.name)}
          value={tag}
          onChange={(v) => {
            setTag(v);
            resetPaging();
          }}
        />
      </Group>
      {meta && (
        <Text size="sm" c="dimmed" aria-live="polite">
          {meta.total_is_estimate ? t("contacts.totalAbout", { count: meta.total }) : t("contacts.total", { count: meta.total })}
        </Text>
      )}
      {contacts.data?.data.length === 0 && <Text c="dimmed">{t("contacts.none")}</Text>}
      {contacts.data && contacts.data.data.length > 0 && (
        <Table.ScrollContainer minWidth={640}>
          <Table striped highlightOnHover aria-label={t("contacts.table")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("contacts.name")}</Table.Th>
                <Table.Th>{t("contacts.number")}</Table.Th>
                <Table.Th>{t("contacts.email")}</Table.Th>
                <Table.Th>{t("contacts.tags")}</Table.Th>
                <Table.Th>{t("contacts.consent")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {contacts.data.data.map((c) => (
                <Table.Tr key={c.id}>
                  <Table.Td>
                    <Anchor component={Link} to={c.id}>
                      {c.name || c.whatsapp_id}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{c.whatsapp_id}</Table.Td>
                  <Table.Td>{c.email ?? ""}</Table.Td>
                  <Table.Td>
                    <Group gap={4}>
                      {c.tags.map((x) => (
                        <Badge key={x} variant="light" size="sm">
                          {x}
                        </Badge>
                      ))}
                    </Group>
                  </Table.Td>
                  <Table.Td>{c.opt_in ? t("contacts.optedIn") : t("contacts.optedOut")}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Group>
        <Button variant="default" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          {t("contacts.previous")}
        </Button>
        <Button
          variant="default"
          disabled={!meta?.next_cursor}
          onClick={() => meta?.next_cursor && setCursors((c) => [...c, meta.next_cursor!])}
        >
          {t("contacts.next")}
        </Button>
      </Group>
    </Stack>
  );
}
