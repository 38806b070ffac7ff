/**
 * The Zero schema of the tables zero-cache replicates (publication `zero_data`, migration 006):
 * `user`, `file` and `file_state`, as migrations/001 and later define them. Epoch-millisecond
 * columns are numbers; nullable columns are optional.
 *
 * @module
 */
import {
  boolean,
  createBuilder,
  createSchema,
  number,
  relationships,
  string,
  table,
} from "@rocicorp/zero";

const user = table("user").columns({
  id: string(),
  name: string(),
  email: string(),
  avatar: string(),
  color: string(),
  exportFormat: string(),
  exportTheme: string(),
  exportBackground: boolean(),
  exportPadding: boolean(),
  createdAt: number(),
  updatedAt: number(),
  flags: string(),
  locale: string().optional(),
  animationSpeed: number().optional(),
  edgeScrollSpeed: number().optional(),
  colorScheme: string().optional(),
  areKeyboardShortcutsEnabled: boolean().optional(),
  enhancedA11yMode: boolean().optional(),
  isSnapMode: boolean().optional(),
  isWrapMode: boolean().optional(),
  isDynamicSizeMode: boolean().optional(),
  isPasteAtCursorMode: boolean().optional(),
  showUiLabels: boolean().optional(),
}).primaryKey("id");

const file = table("file").columns({
  id: string(),
  name: string(),
  ownerId: string(),
  thumbnail: string(),
  shared: boolean(),
  sharedLinkType: string(),
  published: boolean(),
  lastPublished: number(),
  publishedSlug: string(),
  createdAt: number(),
  updatedAt: number(),
  isEmpty: boolean(),
  isDeleted: boolean(),
  createSource: string().optional(),
}).primaryKey("id");

const fileState = table("file_state").columns({
  userId: string(),
  fileId: string(),
  firstVisitAt: number().optional(),
  lastEditAt: number().optional(),
  lastSessionState: string().optional(),
  lastVisitAt: number().optional(),
  isFileOwner: boolean().optional(),
  isPinned: boolean().optional(),
}).primaryKey("userId", "fileId");

const fileRelationships = relationships(file, ({ many, one }) => ({
  fileStates: many({ sourceField: ["id"], destField: ["fileId"], destSchema: fileState }),
  owner: one({ sourceField: ["ownerId"], destField: ["id"], destSchema: user }),
}));

const fileStateRelationships = relationships(fileState, ({ one }) => ({
  file: one({ sourceField: ["fileId"], destField: ["id"], destSchema: file }),
  user: one({ sourceField: ["userId"], destField: ["id"], destSchema: user }),
}));

/** The schema a Zero client and this server share. */
export const schema = createSchema({
  tables: [user, file, fileState],
  relationships: [fileRelationships, fileStateRelationships],
});

/** The schema's type. */
export type ZeroSchema = typeof schema;

/** ZQL over the schema (`zql.file.where(…)`). */
export const zql = createBuilder(schema);

/** What every mutator and query knows of its caller (set by the server from the verified JWT). */
export interface ZeroContext {
  userID: string;
}
