import { ActionIcon, Badge, Button, Center, Group, Loader, Select, Stack, TagsInput, Text, Title } from "@mantine/core";
import { IconArrowLeft } from "@tabler/icons-react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api, unwrap } from "../../api/client";
import type { Schemas } from "../../api/types";
import { contactLabel, windowOpen, type Message } from "../../lib/messages";
import { MessageBubble } from "./MessageBubble";
import { useConversation, useTagNames, useTeam } from "./queries";
import { ReplyBox } from "./ReplyBox";
import { TemplatePicker } from "./TemplatePicker";
import classes from "./inbox.module.css";

type Update = Schemas["ConversationUpdateIn"];

function useUpdate(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: Update) =>
      unwrap(api.PATCH("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id } }, body })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["conversation", id] });
      void client.invalidateQueries({ queryKey: ["conversations"] });
    },
  });
}

/** Opening a conversation with unread messages marks them read (blue ticks on the phone). */
function useMarkRead(id: string, unread: number) {
  const client = useQueryClient();
  useEffect(() => {
    if (unread <= 0) return;
    void api
      .POST("/v1/conversations/{conversation_id}/read", { params: { path: { conversation_id: id } } })
      .then(() => client.invalidateQueries({ queryKey: ["conversations"] }));
  }, [id, unread, client]);
}

/** Pages back through the history, older than the latest page the conversation query keeps. */
function useOlderMessages(id: string, firstCursor: string | null) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [loading, setLoading] = useState(false);
  const current = cursor === undefined ? firstCursor : cursor;
  const load = async () => {
    if (!current) return;
    setLoading(true);
    try {
      const page = await unwrap(
        api.GET("/v1/conversations/{conversation_id}", {
          params: { path: { conversation_id: id }, query: { messages_limit: 100, messages_cursor: current } },
        }),
      );
      setMessages((m) => [...page.messages, ...m]);
      setCursor(page.messages_meta.next_cursor ?? null);
    } finally {
      setLoading(false);
    }
  };
  return { messages, cursor: current, loading, load: () => void load() };
}

export function ConversationView({ id }: { id: string }) {
  const { t, i18n } = useTranslation();
  const conversation = useConversation(id);
  const team = useTeam();
  const tags = useTagNames();
  const update = useUpdate(id);
  const history = useRef<HTMLDivElement>(null);
  const data = conversation.data;
  useMarkRead(id, data?.unread_count ?? 0);
  const older = useOlderMessages(id, data?.messages_meta.next_cursor ?? null);

  const count = data?.messages.length ?? 0;
  useLayoutEffect(() => {
    const el = history.current;
    if (el) el.scrollTop = el.scrollHeight; // the newest message in view
  }, [count, id]);

  if (conversation.isPending) {
    return (
      <Center h="100%">
        <Loader aria-label={t("app.loading")} />
      </Center>
    );
  }
  if (!data) return <Text p="md">{t("app.error", { message: String(conversation.error) })}</Text>;

  const open = windowOpen(data, Date.now());
  const resolved = data.status === "resolved" || data.status === "closed";
  const assignees = (team.data?.data ?? [])
    .filter((u) => u.is_active && u.role !== "viewer")
    .map((u) => ({ value: u.id, label: u.full_name }));
  if (data.assigned_to && !assignees.some((a) => a.value === data.assigned_to!.id)) {
    assignees.push({ value: data.assigned_to.id, label: data.assigned_to.name });
  }
  const expires = data.window_expires_at
    ? new Intl.DateTimeFormat(i18n.language, { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "short" }).format(
        new Date(data.window_expires_at),
      )
    : "";

  return (
    <section className={classes.conversation} aria-label={contactLabel(data)}>
      <Stack gap="xs" p="sm" className={classes.filters}>
        <Group justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap" style={{ minWidth: 0 }}>
            <ActionIcon
              component={Link}
              to="/inbox"
              variant="subtle"
              className={classes.back}
              aria-label={t("inbox.back")}
            >
              <IconArrowLeft size={18} aria-hidden />
            </ActionIcon>
            <Title order={2} size="h4" style={{ minWidth: 0 }} lineClamp={1}>
              {contactLabel(data)}
            </Title>
            <Badge variant="light">{t(`inbox.statuses.${data.status as "open"}`)}</Badge>
          </Group>
          <Button
            size="xs"
            variant={resolved ? "default" : "filled"}
            loading={update.isPending && update.variables?.status !== undefined}
            onClick={() => update.mutate({ status: resolved ? "open" : "resolved" })}
          >
            {resolved ? t("inbox.reopen") : t("inbox.resolve")}
          </Button>
        </Group>
        <Group grow gap="xs" align="flex-start">
          <Select
            size="xs"
            label={t("inbox.assign")}
            placeholder={t("inbox.nobody")}
            clearable
            data={assignees}
            value={data.assigned_to?.id ?? null}
            onChange={(v) => update.mutate({ assigned_to: v })}
          />
          <TagsInput
            size="xs"
            label={t("inbox.tags")}
            data={tags.data ?? []}
            value={data.tags}
            onChange={(next) => update.mutate({ tags: next })}
          />
        </Group>
        <Text size="xs" c={open ? "dimmed" : "orange.9"}>
          {open ? t("inbox.windowOpen", { time: expires }) : t("inbox.windowClosedShort")}
        </Text>
      </Stack>
      <div className={classes.history} ref={history} role="log" aria-label={t("inbox.messages")} tabIndex={0}>
        <Stack gap="xs">
          {older.cursor && (
            <Button size="xs" variant="subtle" onClick={older.load} loading={older.loading} style={{ alignSelf: "center" }}>
              {t("inbox.olderMessages")}
            </Button>
          )}
          {older.messages
            .filter((m) => !data.messages.some((n) => n.id === m.id))
            .map((m) => (
              <MessageBubble key={m.id} message={m} />
            ))}
          {data.messages.length === 0 && (
            <Text c="dimmed" size="sm">
              {t("inbox.noMessages")}
            </Text>
          )}
          {data.messages.map((m) => (
            <MessageBubble key={m.id} message={m} />
          ))}
        </Stack>
      </div>
      {open ? <ReplyBox conversationId={id} key={`reply-${id}`} /> : <TemplatePicker conversationId={id} key={`tpl-${id}`} />}
    </section>
  );
}
