//! Authorized operations (KIP-430) as a client sees them from a server without an authorizer:
//! every operation the resource type supports, as a bit field of Kafka's AclOperation codes;
//! or Kafka's "not requested" marker when the request did not ask.

/// The field's value when the request did not ask for it.
pub const OMITTED: i32 = i32::MIN;

const READ: i32 = 1 << 3;
const WRITE: i32 = 1 << 4;
const CREATE: i32 = 1 << 5;
const DELETE: i32 = 1 << 6;
const ALTER: i32 = 1 << 7;
const DESCRIBE: i32 = 1 << 8;
const CLUSTER_ACTION: i32 = 1 << 9;
const DESCRIBE_CONFIGS: i32 = 1 << 10;
const ALTER_CONFIGS: i32 = 1 << 11;
const IDEMPOTENT_WRITE: i32 = 1 << 12;

/// Kafka's `AclEntry.supportedOperations(TOPIC)`.
pub const TOPIC: i32 =
    READ | WRITE | CREATE | DELETE | ALTER | DESCRIBE | DESCRIBE_CONFIGS | ALTER_CONFIGS;
/// `supportedOperations(CLUSTER)`.
pub const CLUSTER: i32 = CREATE
    | CLUSTER_ACTION
    | DESCRIBE_CONFIGS
    | ALTER_CONFIGS
    | IDEMPOTENT_WRITE
    | ALTER
    | DESCRIBE;
/// `supportedOperations(GROUP)`.
pub const GROUP: i32 = READ | DESCRIBE | DELETE;

/// `set` if the client asked, else the "not requested" marker.
pub fn operations(requested: bool, set: i32) -> i32 {
    if requested { set } else { OMITTED }
}
