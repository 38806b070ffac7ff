/**
 * The server's client configuration (`GET /app/config`): how people sign in here.
 *
 * @module
 */
import { useEffect, useState } from "react";

/** What `GET /app/config` answers (see the server's routes/client_config.ts). */
export interface ClientConfig {
  auth: {
    devIdentityProvider: boolean;
    signInUrl: string | null;
    verifiesTokens: boolean;
  };
  zero: { cacheUrl: string | null };
}

let pending: Promise<ClientConfig> | undefined;

function loadClientConfig(): Promise<ClientConfig> {
  pending ??= fetch("/app/config").then(async (response) => {
    if (!response.ok) throw new Error(`GET /app/config: ${response.status}`);
    return await response.json() as ClientConfig;
  });
  pending.catch(() => pending = undefined);
  return pending;
}

/** The configuration, once loaded (`undefined` until then or when the server did not answer). */
export function useClientConfig(): ClientConfig | undefined {
  const [config, setConfig] = useState<ClientConfig>();
  useEffect(() => {
    let cancelled = false;
    loadClientConfig().then((loaded) => !cancelled && setConfig(loaded), () => {});
    return () => {
      cancelled = true;
    };
  }, []);
  return config;
}
