// Shapes of the search traits (see notes/CONTRACT.md).

export interface Hit {
  sentence_id: number;
  token_index: number;
  score: number;
  token: string;
  pos: string;
  dep: string;
  ent: string;
  sentence: string;
  tokens: string[];
  token_pos: string[];
  token_dep: string[];
  token_ent: string[];
  /** Aligned with `tokens`: true for the model's special tokens ([CLS], [SEP], <s>, ...). */
  special?: boolean[];
  max_att_index?: number | null;
  max_att_token?: string | null;
  max_att_pos?: string | null;
  max_att_dep?: string | null;
  max_att_ent?: string | null;
  max_att_offset?: number | null;
  att_offset: number;
  att_length: number;
  describes_next?: boolean;
}

export type Field = "pos" | "dep" | "ent" | "offset";
export const FIELDS: Field[] = ["pos", "dep", "ent", "offset"];

export type Counts = Record<string, number>;

export interface Summaries {
  match?: Partial<Record<Field, Counts>>;
  max_att?: Partial<Record<Field, Counts>>;
}
