import { h } from './element.ts';
import { errorText } from './error-box.ts';
import type { PageContext } from './page-context.ts';

/**
 * A button that runs an action of the API and then tells the operator what happened: the
 * text `run` resolves with ("Paused orders"), or "<label> failed: CODE: message". `run`
 * resolves undefined when nothing was done (a confirmation was cancelled). After a success,
 * `changed` redraws what the action changed.
 */
export function actionButton(
  ctx: PageContext,
  label: string,
  run: () => Promise<string | undefined>,
  options: { danger?: boolean; changed?: () => void } = {},
): HTMLButtonElement {
  const onclick = async (): Promise<void> => {
    try {
      const done = await run();
      if (done === undefined) return;
      ctx.notice(done);
      options.changed?.();
    } catch (error) {
      ctx.notice(`${label.replace(/…$/, '')} failed: ${errorText(error)}`);
    }
  };
  return h(
    'button',
    {
      type: 'button',
      class: options.danger === true ? 'danger' : '',
      onclick: () => void onclick(),
    },
    label,
  );
}

/** A queue's or a schedule's state as a badge: "paused" or "active". */
export function pausedBadge(paused: boolean): HTMLElement {
  return h(
    'span',
    { class: `state ${paused ? 'paused' : 'active'}` },
    paused ? 'paused' : 'active',
  );
}
