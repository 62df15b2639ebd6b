// Listening on every address of both families: "::" (IPv6 any, which Linux makes dual-stack for TCP and for a
// UDP socket that is not IPv6-only), falling back to "0.0.0.0" on a host with IPv6 disabled or absent.

/** The host a listener binds when its flag gives none: both families. */
export const ANY_HOST = "::";

const NO_IPV6 = new Set(["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"]);

/** bind(host) for host; for ANY_HOST on a host without IPv6, bind("0.0.0.0") instead. */
export async function bindAnyFamily<T>(host: string, bind: (host: string) => Promise<T>): Promise<T> {
  try {
    return await bind(host);
  } catch (err) {
    if (host !== ANY_HOST || !NO_IPV6.has((err as NodeJS.ErrnoException).code ?? "")) throw err;
    return bind("0.0.0.0");
  }
}
