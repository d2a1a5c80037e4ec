import { h, replaceChildren } from './element.ts';
import { errorBox } from './error-box.ts';

/**
 * Draws the token form into `container`: the service requires a token, and this browser
 * session has none that works. `refusal` is why the last one was refused (shown with its
 * code, UNAUTHENTICATED); `submit` gets the token entered and resolves with the refusal of
 * that one, or undefined once it was accepted.
 */
export function showSignIn(
  container: HTMLElement,
  refusal: unknown,
  submit: (token: string) => Promise<unknown>,
): void {
  const input = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    required: true,
    placeholder: 'hl_…',
    'aria-label': 'API token',
  });
  const status = h(
    'div',
    { class: 'sign-in-status' },
    refusal === undefined ? null : errorBox(refusal),
  );
  const form = h(
    'form',
    {
      class: 'sign-in',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (token === '') return;
        replaceChildren(status, 'Checking the token…');
        void submit(token).then((error) => {
          if (error !== undefined) replaceChildren(status, errorBox(error));
        });
      },
    },
    h('h1', null, 'Sign in'),
    h(
      'p',
      null,
      'This service requires an API token. It is kept for this browser tab only (session storage) and sent as the bearer token of every request. Create one with ',
      h('code', null, 'holdline token create --name ops --scopes "read:*"'),
      ' (read only) or ',
      h('code', null, '--scopes admin'),
      '.',
    ),
    h('label', null, 'API token ', input),
    h('button', { type: 'submit' }, 'Open the dashboard'),
    status,
  );
  replaceChildren(container, form);
  input.focus();
}
