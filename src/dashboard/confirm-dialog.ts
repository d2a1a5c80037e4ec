import { h } from './element.ts';

/**
 * Asks the operator to confirm an action in a modal dialog that says what will happen,
 * including how many messages it touches. Resolves true on the action's button, false on
 * Cancel or Escape. Nothing is sent before it resolves true.
 */
export function confirmAction(options: {
  title: string;
  /** The sentence stating the effect and the count, e.g. "Redrive 3 dead letters …". */
  text: string;
  /** The confirming button's label, e.g. "Redrive 3". */
  confirmLabel: string;
  /** Extra controls shown above the buttons (e.g. the target queue of a move). */
  body?: HTMLElement;
}): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, options.title),
      h('p', { class: 'confirm-text' }, options.text),
      options.body,
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h(
          'button',
          { type: 'button', class: 'danger', onclick: () => dialog.close('confirm') },
          options.confirmLabel,
        ),
      ),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm');
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
