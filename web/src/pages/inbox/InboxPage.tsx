import { Center, Text } from "@mantine/core";
import { useCallback, useEffect, useRef } from "react";
import { useTranslation } from "react-i18next";
import { useNavigate, useParams } from "react-router";

import { useSession } from "../../auth/useSession";
import { neighbour } from "../../lib/messages";
import { ContactCard } from "./ContactCard";
import { ConversationList } from "./ConversationList";
import { ConversationView } from "./ConversationView";
import { useConversation, useLiveInbox } from "./queries";
import classes from "./inbox.module.css";

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el) return false;
  return el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName) || el.getAttribute("role") === "combobox";
}

export default function InboxPage() {
  const { t } = useTranslation();
  const { conversationId } = useParams();
  const navigate = useNavigate();
  const me = useSession()?.user.id ?? "";
  const ids = useRef<string[]>([]);
  const onIds = useCallback((next: string[]) => {
    ids.current = next;
  }, []);
  const detail = useConversation(conversationId);
  useLiveInbox();

  // ↑/↓ move between conversations (not while typing: there they move the caret).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.key !== "ArrowDown" && event.key !== "ArrowUp") || typing(event.target)) return;
      if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      const next = neighbour(ids.current, conversationId, event.key === "ArrowDown" ? 1 : -1);
      if (!next || next === conversationId) return;
      event.preventDefault();
      navigate(`/inbox/${next}`);
      requestAnimationFrame(() =>
        document.querySelector<HTMLElement>(`[data-conversation-id="${next}"]`)?.focus(),
      );
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [conversationId, navigate]);

  return (
    <div className={classes.page} data-open={conversationId ? "true" : "false"}>
      <h2 className="visually-hidden">{t("inbox.title")}</h2>
      <ConversationList me={me} selected={conversationId} onIds={onIds} />
      {conversationId ? (
        <ConversationView id={conversationId} key={conversationId} />
      ) : (
        <Center className={classes.conversation}>
          <Text c="dimmed">{t("inbox.pick")}</Text>
        </Center>
      )}
      {conversationId && detail.data ? (
        <ContactCard contactId={detail.data.contact.id} />
      ) : (
        <div className={classes.card} />
      )}
    </div>
  );
}
