export { totalSupply, TOTAL_SUPPLY_PAYLOAD_BYTES } from './total-supply.ts'
export type { TotalSupply, TotalSupplyOptions, SupplyState } from './total-supply.ts'
export { max, MAX_PAYLOAD_BYTES } from './max.ts'
export type { Max, MaxOptions, MaxState } from './max.ts'
export { gCounter, boundedGCounter, G_COUNTER_PAYLOAD_BYTES } from './g-counter.ts'
export type {
  GCounter,
  GCounterOptions,
  GCounterState,
  BoundedGCounter,
  BoundedGCounterOptions,
  BoundedGCounterState,
} from './g-counter.ts'
export { lww, LWW_MAX_VALUE_BYTES } from './lww.ts'
export type { Lww, LwwState } from './lww.ts'
export { uniqueness, UNIQUENESS_UNIVERSE } from './uniqueness.ts'
export type { Uniqueness, UniquenessState } from './uniqueness.ts'
export { uniqueSet, UNIQUE_SET_KEY_BYTES } from './unique-set.ts'
export type { UniqueSet, UniqueSetOptions, UniqueSetState } from './unique-set.ts'
export { gGraph, G_GRAPH_VERTICES } from './g-graph.ts'
export type { GGraph, GGraphOptions, GGraphState } from './g-graph.ts'
export { graph, GRAPH_PAYLOAD_BYTES } from './graph.ts'
export type { Graph, GraphOptions, GraphState } from './graph.ts'
export { custom } from './custom.ts'
export type { Custom, CustomOptions } from './custom.ts'
export { multi, MULTI_MAX_MEMBERS, MULTI_PART_HEADER_BYTES } from './multi.ts'
export type { Multi, MultiState } from './multi.ts'
export { coordinationOf } from './types.ts'
export type { AlgebraicClass, Coordination, CustomApply, InvariantSpec, StateOf } from './types.ts'
