// `ctfs/nats`: replication through NATS JetStream. A subpath of its own so
// that the main entry never loads the `nats` client (an optional peer
// dependency: `npm install nats` to use this).
export { natsTransport, NatsTransport } from './cluster/nats.ts'
export type { NatsTransportOptions, NatsTransportConfig, StreamLimits } from './cluster/nats.ts'
export type { FactStream, StreamStats, TransportContext, TransportFactory } from './cluster/transport.ts'
