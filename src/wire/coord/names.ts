// Identity names and roles as the coordination protocol carries them: the one NAME_PATTERN every component checks
// names with (certificates, enrollment, map frames, telemetry, services, policies), and the roles that make an
// identity infrastructure. Relay stream names (src/wire/relay.ts RELAY_NAME_PATTERN) also allow '_', since
// reason codes travel in the same field.
import { RELAY_ROLE } from "../relay.js";

/** One DNS label, lowercase: 1-63 letters, digits and '-', not starting or ending with '-'. */
export const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
/** Names of nodes, users of the mesh, tenants, groups and services: they work as identity names, SPIFFE path segments and host names alike. */
export const NAME_PATTERN = new RegExp(`^${LABEL}$`);
/** NAME_PATTERN in words, for refusals. */
export const NAME_RULE = "lowercase letters, digits and '-', 1-63 characters";
/** A DNS name of at least two labels, lowercase: what SNI carries to an edge. */
export const HOSTNAME_PATTERN = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})+$`);
/** Endpoint strings nodes report: host:port or [v6]:port. */
export const ENDPOINT_PATTERN = /^(?:\[[0-9a-fA-F:.]{2,45}\]|[0-9A-Za-z.-]{1,253}):\d{1,5}$/;
/** A dotted-quad IPv4 address (the node's TUN routes and firewall key on it, so junk is refused). */
export const OVERLAY_IP_PATTERN = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** The coordination server's own identity: clients refuse any other server certificate. */
export const SERVER_NAME = "coord";
export const SERVER_ROLE = "server";
/** Structurally a pki/mtls-client ExpectedServer (the protocol does not import the client). */
export const COORD_SERVER = { name: SERVER_NAME, role: SERVER_ROLE, description: "coordination server" } as const;

export const ADMIN_ROLE = "admin";
/** The role a node's certificate must grant to receive publications and to open external flows. */
export const EDGE_ROLE = "edge";
/**
 * Roles of the infrastructure: a node enrolled with one is trusted as a relay or as the coordination server by
 * every node that checks only the role and a name. A token granting one needs an explicit confirmation
 * (allowInfraRole, `ember token create --allow-infra-role`), as role admin needs allowAdminRole.
 */
export const INFRA_ROLES: readonly string[] = [RELAY_ROLE, SERVER_ROLE];
