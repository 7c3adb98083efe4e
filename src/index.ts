/**
 * ctfs — coordination-free distributed state for Node.js, with a Rust core.
 *
 * @packageDocumentation
 */
export { Kernel, Tenant, Domain, BatchResult } from './kernel.ts'
export type {
  KernelOptions,
  CausalityMode,
  AdmitOptions,
  FactInput,
  Frontier,
  KernelView,
  KernelStats,
  Requirement,
} from './kernel.ts'
export { FactBatch } from './batch.ts'
export { DurableKernel, inspect } from './durable.ts'
export type {
  DurableKernelOptions,
  DurableAdmission,
  DurabilityBackend,
  DurabilityInfo,
  RecoveryReport,
  InspectReport,
} from './durable.ts'
export { Escrow } from './escrow.ts'
export { Replica } from './replica.ts'
export { ReplicaSync } from './sync.ts'
export type { SyncOptions, SyncOutput, SyncEvent, SyncStats, OutgoingFrame, Digests } from './sync.ts'
export type { ReplicaOptions, BoundSide } from './replica.ts'
export type { EscrowOptions, Quota, QuotaPoll, GrantOutcome } from './escrow.ts'
export { CtfsError, isCtfsError, ERROR_CODES, OTHER_ERROR_CODES } from './errors.ts'
export type { CtfsErrorCode, CtfsErrorDetails } from './errors.ts'
export {
  FACT_ID_BYTES,
  checkFactId,
  compareFactIds,
  factIdEquals,
  factIdFromHex,
  factIdToHex,
  lowestFactId,
} from './fact-id.ts'
export type { FactId } from './fact-id.ts'
export * as invariants from './invariants/index.ts'
export type {
  AlgebraicClass,
  Coordination,
  CustomApply,
  InvariantSpec,
  StateOf,
  SupplyState,
  TotalSupply,
  Max,
  MaxState,
  GCounter,
  GCounterState,
  BoundedGCounter,
  BoundedGCounterState,
  Lww,
  LwwState,
  Uniqueness,
  UniquenessState,
  UniqueSet,
  UniqueSetState,
  GGraph,
  GGraphState,
  Graph,
  GraphState,
  Custom,
  CustomOptions,
  Multi,
  MultiState,
} from './invariants/index.ts'
export {
  replicate,
  ClusterNode,
  ClusterError,
  TcpTransport,
  parsePeer,
  parseAddress,
  formatAddress,
  loadClusterFile,
  readKeyFile,
} from './cluster/index.ts'
export type {
  ReplicateOptions,
  ClusterEvents,
  ClusterStats,
  PeerEvent,
  SyncedOptions,
  Transport,
  TransportHandlers,
  FrameSource,
  TransportStats,
  TransportPeerStats,
  TcpTransportOptions,
  Address,
  PeerAddress,
  PeerSpec,
  ClusterFile,
  BackoffOptions,
} from './cluster/index.ts'
