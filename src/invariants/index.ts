export { totalSupply, TOTAL_SUPPLY_PAYLOAD_BYTES } from './total-supply.ts'
export type { TotalSupply, TotalSupplyOptions, SupplyState } from './total-supply.ts'
export { coordinationOf } from './types.ts'
export type { AlgebraicClass, Coordination, InvariantSpec, StateOf } from './types.ts'
