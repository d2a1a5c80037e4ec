import { h } from './element.ts';
import { ApiError } from './graphql-api.ts';

/** An error as the operator reads it: the API's code first, then its message. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** A box stating an error (role "alert", so it is announced and tests can find it). */
export function errorBox(error: unknown): HTMLElement {
  return h('p', { class: 'error', role: 'alert' }, errorText(error));
}
