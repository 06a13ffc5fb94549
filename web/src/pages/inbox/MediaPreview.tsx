import { Anchor, Image, Text } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import type { Schemas } from "../../api/types";

type Media = Schemas["MediaOut"];

// A signed URL lives five minutes (media_signed_url_ttl_seconds); ask again a minute before.
const SIGNED_URL_FRESH_MS = 4 * 60_000;

/** The stored file itself: an image, a player for audio and video, a link to a document. The
 * bytes come through a short-lived signed URL, so `<img>` and `<audio>` need no bearer header. */
export function MediaPreview({ media, type }: { media: Media; type: string }) {
  const { t } = useTranslation();
  const stored = media.status === "stored";
  const signed = useQuery({
    queryKey: ["media-url", media.id],
    enabled: stored,
    staleTime: SIGNED_URL_FRESH_MS,
    refetchInterval: SIGNED_URL_FRESH_MS,
    queryFn: () => unwrap(api.GET("/v1/media/{media_id}/url", { params: { path: { media_id: media.id } } })),
  });
  if (!stored) {
    return (
      <Text size="xs" c="dimmed" data-media-status={media.status}>
        {t(`inbox.mediaStatus.${media.status}`)}
      </Text>
    );
  }
  const url = signed.data?.url;
  if (!url) return null;
  const label = media.caption || media.file_name || t(`inbox.media.${type}`, { defaultValue: type });
  if (type === "image" || type === "sticker") {
    return <Image src={url} alt={label} maw={280} mah={280} fit="contain" radius="sm" />;
  }
  if (type === "audio") return <audio controls src={url} aria-label={label} preload="metadata" />;
  if (type === "video") return <video controls src={url} aria-label={label} width={280} preload="metadata" />;
  return (
    <Anchor href={url} download={media.file_name ?? undefined} size="sm">
      {t("inbox.downloadFile", { name: media.file_name || label })}
    </Anchor>
  );
}
