/** Codes of {@link TokenError}. */
export type TokenErrorCode = 'BAD_USER_INPUT' | 'TOKEN_EXISTS';

/**
 * A token-management failure the caller can act on (a bad name or scope, a name already held
 * by a live token), with a message fit to show them.
 */
export class TokenError extends Error {
  override name = 'TokenError';
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
