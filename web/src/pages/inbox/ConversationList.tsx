import { Badge, Group, Loader, SegmentedControl, Select, Stack, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { contactLabel, type Conversation } from "../../lib/messages";
import { useConversationList, useTagNames, type InboxFilter } from "./queries";
import classes from "./inbox.module.css";

const ROW_HEIGHT = 68;
const STATUSES = ["open", "pending", "assigned", "resolved", "closed"] as const;

interface Props {
  me: string;
  selected: string | undefined;
  onIds: (ids: string[]) => void;
}

export function ConversationList({ me, selected, onIds }: Props) {
  const { t } = useTranslation();
  const [view, setView] = useState<InboxFilter["view"]>("all");
  const [status, setStatus] = useState<InboxFilter["status"]>(null);
  const [tag, setTag] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [debounced] = useDebouncedValue(search, 300);
  const filter = useMemo(() => ({ view, status, tag, search: debounced }), [view, status, tag, debounced]);
  const list = useConversationList(filter, me);
  const tags = useTagNames();
  const rows = useMemo(() => list.data?.pages.flatMap((p) => p.data) ?? [], [list.data]);
  const ids = useMemo(() => rows.map((c) => c.id), [rows]);
  useEffect(() => onIds(ids), [ids, onIds]);

  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
  });
  const items = virtual.getVirtualItems();
  const last = items[items.length - 1];
  useEffect(() => {
    if (last && last.index >= rows.length - 20 && list.hasNextPage && !list.isFetchingNextPage) {
      void list.fetchNextPage();
    }
  }, [last, rows.length, list]);

  // The selected conversation stays in view when ↑/↓ move past the visible rows.
  useEffect(() => {
    const at = selected ? ids.indexOf(selected) : -1;
    if (at >= 0) virtual.scrollToIndex(at, { align: "auto" });
  }, [selected, ids, virtual]);

  return (
    <Stack gap={0} h="100%" className={classes.list}>
      <Stack gap="xs" p="sm" className={classes.filters}>
        <SegmentedControl
          fullWidth
          size="xs"
          aria-label={t("inbox.view")}
          value={view}
          onChange={(v) => setView(v as InboxFilter["view"])}
          data={[
            { value: "all", label: t("inbox.all") },
            { value: "mine", label: t("inbox.mine") },
            { value: "unassigned", label: t("inbox.unassigned") },
          ]}
        />
        <Group grow gap="xs">
          <Select
            size="xs"
            label={t("inbox.status")}
            placeholder={t("inbox.anyStatus")}
            clearable
            value={status}
            onChange={(v) => setStatus(v as InboxFilter["status"])}
            data={STATUSES.map((s) => ({ value: s, label: t(`inbox.statuses.${s}`) }))}
          />
          <Select
            size="xs"
            label={t("inbox.tag")}
            placeholder={t("inbox.anyTag")}
            clearable
            searchable
            value={tag}
            onChange={setTag}
            data={tags.data ?? []}
          />
        </Group>
        <TextInput
          size="xs"
          type="search"
          label={t("inbox.search")}
          placeholder={t("inbox.searchPlaceholder")}
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
        />
      </Stack>
      <nav aria-label={t("inbox.conversations")} className={classes.scroller} ref={scroller}>
        {list.isPending && <Loader m="md" aria-label={t("app.loading")} />}
        {list.isSuccess && rows.length === 0 && (
          <Text p="md" c="dimmed">
            {t("inbox.empty")}
          </Text>
        )}
        <ul className={classes.rows} style={{ height: virtual.getTotalSize() }}>
          {items.map((item) => {
            const conversation = rows[item.index]!;
            return (
              <li
                key={conversation.id}
                className={classes.row}
                style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
              >
                <Row conversation={conversation} selected={conversation.id === selected} />
              </li>
            );
          })}
        </ul>
        {list.isFetchingNextPage && (
          <Text size="xs" c="dimmed" p="xs">
            {t("inbox.loadingMore")}
          </Text>
        )}
      </nav>
      <Text size="xs" c="dimmed" px="sm" py={4} className={classes.hint}>
        {t("inbox.keyboardHint")}
      </Text>
    </Stack>
  );
}

function Row({ conversation, selected }: { conversation: Conversation; selected: boolean }) {
  const { t, i18n } = useTranslation();
  const when = conversation.last_message_at
    ? new Intl.DateTimeFormat(i18n.language, { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "short" }).format(
        new Date(conversation.last_message_at),
      )
    : "";
  const unread = conversation.unread_count;
  return (
    <Link
      to={`/inbox/${conversation.id}`}
      className={classes.link}
      aria-current={selected ? "page" : undefined}
      data-conversation-id={conversation.id}
    >
      <Group justify="space-between" wrap="nowrap" gap="xs">
        <Text fw={unread ? 700 : 500} truncate size="sm">
          {contactLabel(conversation)}
        </Text>
        <Text size="xs" c="dimmed" style={{ flexShrink: 0 }}>
          {when}
        </Text>
      </Group>
      <Group justify="space-between" wrap="nowrap" gap="xs">
        <Text size="xs" c="dimmed" truncate>
          {t(`inbox.statuses.${conversation.status as (typeof STATUSES)[number]}`)}
          {conversation.assigned_to ? ` · ${conversation.assigned_to.name}` : ""}
          {conversation.tags.length ? ` · ${conversation.tags.join(", ")}` : ""}
        </Text>
        {unread > 0 && (
          <Badge size="sm" circle={unread < 10} aria-label={t("inbox.unread", { count: unread })}>
            {unread}
          </Badge>
        )}
      </Group>
    </Link>
  );
}
