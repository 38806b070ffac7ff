/**
 * Import first in tldraw tests. Loading the tldraw packages starts a 100 ms version-check timer
 * (`registerTldrawLibraryVersion`); letting it fire here keeps Deno's timer sanitizer from blaming
 * the first test of the file.
 *
 * @module
 */
import "@tldraw/sync-core";
import "@tldraw/tlschema";

await new Promise((resolve) => setTimeout(resolve, 150));
