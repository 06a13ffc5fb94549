import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Paths = paths;
