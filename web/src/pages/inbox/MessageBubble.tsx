import { Group, Stack, Text } from "@mantine/core";
import {
  IconAlertTriangle,
  IconCheck,
  IconChecks,
  IconClock,
  IconFile,
  IconHeadphones,
  IconMapPin,
  IconMovie,
  IconPhoto,
  IconSticker,
} from "@tabler/icons-react";
import { useTranslation } from "react-i18next";

import { failureReason, shownContent, ticksOf, type Message, type Ticks } from "../../lib/messages";
import classes from "./inbox.module.css";
import { MediaPreview } from "./MediaPreview";

const MEDIA_ICONS = {
  image: IconPhoto,
  video: IconMovie,
  audio: IconHeadphones,
  document: IconFile,
  sticker: IconSticker,
} as const;

type MediaType = keyof typeof MEDIA_ICONS;

function Tick({ ticks }: { ticks: Ticks }) {
  const { t } = useTranslation();
  const label = t(`inbox.ticks.${ticks}`);
  // The icon is decoration; the word is always there for screen readers (and beside failures).
  const icon =
    ticks === "pending" ? (
      <IconClock size={14} aria-hidden />
    ) : ticks === "sent" ? (
      <IconCheck size={14} aria-hidden />
    ) : ticks === "failed" ? (
      <IconAlertTriangle size={14} aria-hidden />
    ) : (
      <IconChecks size={14} aria-hidden className={ticks === "read" ? classes.read : undefined} />
    );
  return (
    <Group gap={2} wrap="nowrap" role="img" aria-label={label} title={label} data-ticks={ticks}>
      {icon}
      {ticks === "failed" && (
        <Text span size="xs" c="red.8">
          {label}
        </Text>
      )}
    </Group>
  );
}

function Body({ message }: { message: Message }) {
  const { t } = useTranslation();
  const shown = shownContent(message);
  if (shown.kind === "media") {
    const type = message.type as MediaType;
    const Icon = MEDIA_ICONS[type] ?? IconFile;
    return (
      <Stack gap={4}>
        <Group gap={6} wrap="nowrap">
          <Icon size={18} aria-hidden />
          <Text size="sm" fw={500}>
            {shown.filename ?? t(`inbox.media.${type}`)}
          </Text>
        </Group>
        {message.media && <MediaPreview media={message.media} type={type} />}
        {shown.text && <Text size="sm">{shown.text}</Text>}
      </Stack>
    );
  }
  if (shown.kind === "location") {
    const where =
      shown.latitude !== undefined && shown.longitude !== undefined
        ? t("inbox.locationAt", { lat: shown.latitude, lng: shown.longitude })
        : t("inbox.location");
    return (
      <Group gap={6} wrap="nowrap">
        <IconMapPin size={18} aria-hidden />
        <Text size="sm">{shown.text ? `${shown.text} · ${where}` : where}</Text>
      </Group>
    );
  }
  if (shown.kind === "reaction") return <Text size="sm">{t("inbox.reaction", { emoji: shown.emoji })}</Text>;
  if (shown.kind === "contacts") return <Text size="sm">{t("inbox.contactsCard")}</Text>;
  if (shown.kind === "other" && !shown.text) {
    return <Text size="sm">{t("inbox.unsupported", { type: message.type })}</Text>;
  }
  return <Text size="sm">{shown.text}</Text>;
}

export function MessageBubble({ message }: { message: Message }) {
  const { t, i18n } = useTranslation();
  const ticks = ticksOf(message);
  const reason = ticks === "failed" ? failureReason(message) : null;
  const outbound = message.direction === "outbound";
  const time = new Intl.DateTimeFormat(i18n.language, { hour: "2-digit", minute: "2-digit" }).format(
    new Date(message.created_at),
  );
  return (
    <Stack
      gap={2}
      className={`${classes.bubble} ${outbound ? classes.outbound : classes.inbound}`}
      data-message-id={message.id}
      data-direction={message.direction}
      aria-label={outbound ? t("inbox.you") : t("inbox.customer")}
      role="group"
    >
      {message.context_message_id && (
        <Text size="xs" c="dimmed">
          {t("inbox.replyTo")}
        </Text>
      )}
      <Body message={message} />
      <Group gap={6} justify="flex-end" wrap="nowrap">
        <Text size="xs" c="dimmed">
          {time}
        </Text>
        {ticks && <Tick ticks={ticks} />}
      </Group>
      {reason && (
        <Text size="xs" c="red.8">
          {t("inbox.failedReason", { reason })}
        </Text>
      )}
    </Stack>
  );
}
