import { Button, Group, Stack, Text, Textarea } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type KeyboardEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import type { Schemas } from "../../api/types";
import classes from "./inbox.module.css";

export type Reply = Schemas["ReplyIn"];

/** Send a reply in a conversation (an Idempotency-Key per message: a retry never sends twice). */
export function useSendReply(conversationId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: Reply) =>
      unwrap(
        api.POST("/v1/conversations/{conversation_id}/messages", {
          params: {
            path: { conversation_id: conversationId },
            header: { "Idempotency-Key": crypto.randomUUID() },
          },
          body,
        }),
      ),
    onSettled: () => {
      void client.invalidateQueries({ queryKey: ["conversation", conversationId] });
      void client.invalidateQueries({ queryKey: ["conversations"] });
    },
  });
}

export function ReplyBox({ conversationId }: { conversationId: string }) {
  const { t } = useTranslation();
  const [text, setText] = useState("");
  const send = useSendReply(conversationId);
  const error = send.error instanceof ApiError ? send.error : null;

  const submit = () => {
    const body = text.trim();
    if (!body || send.isPending) return;
    send.mutate({ type: "text", text: { body } }, { onSuccess: () => setText("") });
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };

  return (
    <form
      className={classes.composer}
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <Stack gap={4} p="sm">
        <Group align="flex-end" wrap="nowrap" gap="xs">
          <Textarea
            style={{ flex: 1 }}
            label={t("inbox.message")}
            description={t("inbox.messageHint")}
            autosize
            minRows={1}
            maxRows={6}
            value={text}
            onChange={(e) => setText(e.currentTarget.value)}
            onKeyDown={onKeyDown}
            error={error?.fieldMessage("text.body") ?? error?.message}
          />
          <Button type="submit" loading={send.isPending} disabled={!text.trim()}>
            {t("inbox.send")}
          </Button>
        </Group>
        {send.error && !error && (
          <Text size="sm" c="red.8" role="alert">
            {String(send.error)}
          </Text>
        )}
      </Stack>
    </form>
  );
}
