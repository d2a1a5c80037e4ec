/** The key under which the token is kept in the tab's session storage. */
const TOKEN_KEY = 'holdline.token';

/**
 * The API token of this browser session: entered once, kept in sessionStorage (so it ends
 * with the tab and is never written to disk as localStorage would), sent as the bearer token
 * of every request. Undefined when none was entered (a service without authentication
 * needs none).
 */
export const sessionToken = {
  get(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};
