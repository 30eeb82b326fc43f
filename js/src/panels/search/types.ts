// Search-panel types: the hit rows come from the generated contract.

export type { Hit, Summaries } from "../../generated/contract";

export type Field = "pos" | "dep" | "ent" | "offset";
export const FIELDS: Field[] = ["pos", "dep", "ent", "offset"];

export type Counts = Record<string, number>;
