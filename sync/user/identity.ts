/**
 * Who a request or socket is acting for, as established by a verified token.
 *
 * @module
 */

/** A verified caller. `name`/`email` come from the token's claims when present (used to create the user row). */
export interface Identity {
  userId: string;
  name?: string;
  email?: string;
}
