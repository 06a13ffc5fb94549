import { Alert, Center, Image, Loader, Modal, Stack, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import type { Schemas } from "../../api/types";

type Config = Schemas["ConfigOut"];

/** An Evolution number's QR code, refreshed until the business phone has scanned it. */
export function QrCodeModal({ config, onClose }: { config: Config; onClose: () => void }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const path = { config_id: config.id };
  // A number whose instance was never created on its server gets one first (with a QR code).
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/whatsapp-configs/{config_id}/instance", { params: { path } })),
  });
  const needsInstance = config.connection_state === null || config.connection_state === undefined;
  useEffect(() => {
    if (needsInstance && create.isIdle) create.mutate();
  }, [needsInstance, create]);
  const ready = !needsInstance || create.isSuccess;
  const connection = useQuery({
    queryKey: ["connection", config.id],
    enabled: ready,
    queryFn: () => unwrap(api.GET("/v1/whatsapp-configs/{config_id}/connection", { params: { path } })),
    refetchInterval: (q) => (q.state.data?.status === "connected" ? false : 2000),
  });
  const connected = connection.data?.status === "connected";
  const qr = useQuery({
    queryKey: ["qrcode", config.id],
    enabled: ready && connection.isSuccess && !connected,
    queryFn: () => unwrap(api.GET("/v1/whatsapp-configs/{config_id}/qrcode", { params: { path } })),
    refetchInterval: 20_000, // a QR code lives about a minute: show a fresh one before then
  });
  useEffect(() => {
    if (connected) void client.invalidateQueries({ queryKey: ["numbers"] });
  }, [connected, client]);
  const image = qr.data?.qr_code ?? create.data?.instance.qr_code ?? null;
  const failure = create.error ?? connection.error ?? qr.error;

  return (
    <Modal closeButtonProps={{ "aria-label": t("app.close") }} opened onClose={onClose} title={t("settings.numbers.qr")}>
      <Stack align="center">
        {failure && (
          <Alert color="red" role="alert" w="100%">
            {failure.message}
          </Alert>
        )}
        {connected ? (
          <Text role="status" fw={600} c="teal.9">
            {t("settings.numbers.connected")}
          </Text>
        ) : image ? (
          <>
            <Image src={image} alt={t("settings.numbers.qrAlt", { name: config.name })} w={256} h={256} />
            <Text size="sm" role="status">
              {t("settings.numbers.waiting")}
            </Text>
          </>
        ) : (
          !failure && (
            <Center>
              <Loader aria-label={t("app.loading")} />
            </Center>
          )
        )}
      </Stack>
    </Modal>
  );
}
