// The inbox's server state (TanStack Query), kept live by /ws frames.
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";

import { api, unwrap } from "../../api/client";
import type { Schemas } from "../../api/types";
import { subscribe, type Frame } from "../../lib/realtime";

export type ConversationDetail = Schemas["ConversationDetailOut"];

export interface InboxFilter {
  view: "all" | "mine" | "unassigned";
  status: Schemas["ConversationOut"]["status"] | null;
  tag: string | null;
  search: string;
}

const PAGE = 100;

export function useConversationList(filter: InboxFilter, me: string) {
  return useInfiniteQuery({
    queryKey: ["conversations", filter, me],
    initialPageParam: 1,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/v1/conversations", {

          params: {
            query: {
              page: pageParam,
              limit: PAGE,
              status: (filter.status ?? undefined) as never,
              tag: filter.tag ?? undefined,
              search: filter.search || undefined,
              assigned_to: filter.view === "mine" ? me : undefined,
              unassigned: filter.view === "unassigned" ? true : undefined,
            },
          },
        }),
      ),
    getNextPageParam: (last) =>
      last.meta.current_page < last.meta.total_pages ? last.meta.current_page + 1 : undefined,
  });
}

export function useConversation(id: string | undefined) {
  return useQuery({
    queryKey: ["conversation", id],
    enabled: Boolean(id),
    queryFn: () =>
      unwrap(
        api.GET("/v1/conversations/{conversation_id}", {

          params: { path: { conversation_id: id! }, query: { messages_limit: 100 } },
        }),
      ),
  });
}

export function useContact(id: string | undefined) {
  return useQuery({
    queryKey: ["contact", id],
    enabled: Boolean(id),
    queryFn: () =>
      unwrap(api.GET("/v1/contacts/{contact_id}", { params: { path: { contact_id: id! } } })),
  });
}

export function useTeam() {
  return useQuery({
    queryKey: ["users"],
    staleTime: 60_000,
    queryFn: () =>
      unwrap(api.GET("/v1/users", { params: { query: { limit: 100 } } })),
  });
}

export function useTagNames() {
  return useQuery({
    queryKey: ["tags"],
    staleTime: 60_000,
    queryFn: () =>
      unwrap(api.GET("/v1/tags")),
    select: (tags) => tags.map((tag) => tag.name),
  });
}

function conversationOf(frame: Frame): string | null {
  const data = frame.data ?? {};
  const nested = data.conversation as { id?: unknown } | undefined;
  const id = data.conversation_id ?? nested?.id ?? (frame.type === "conversation" ? data.id : null);
  return typeof id === "string" ? id : null;
}

/** Refetch what a frame changed (batched: a burst of frames is one refetch). */
export function useLiveInbox(): void {
  const client = useQueryClient();
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const touched = new Set<string>();
    let lists = false;
    let everything = false;
    const flush = () => {
      timer = null;
      if (lists) void client.invalidateQueries({ queryKey: ["conversations"] });
      if (everything) void client.invalidateQueries({ queryKey: ["conversation"] });
      else touched.forEach((id) => void client.invalidateQueries({ queryKey: ["conversation", id] }));
      touched.clear();
      lists = everything = false;
    };
    return subscribe((frame) => {
      if (frame.type === "resync") {
        lists = everything = true; // frames before the socket's start were not replayed
        timer ??= setTimeout(flush, 0);
        return;
      }
      if (!["message", "status", "conversation"].includes(frame.type)) return;
      const id = conversationOf(frame);
      if (id) touched.add(id);
      lists = lists || frame.type !== "status";
      if (frame.type === "status" && !id) lists = true;
      timer ??= setTimeout(flush, 150);
    });
  }, [client]);
}
