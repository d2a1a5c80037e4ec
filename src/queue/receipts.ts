import { badInput } from './errors.ts';

/** A decoded receipt: the message and the lease token that fences it. */
export interface Receipt {
  messageId: string;
  leaseToken: string;
}

const RECEIPT_PATTERN =
  /^([1-9][0-9]{0,18})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * A receipt is `<message id>.<lease token>`. The token is a random UUID drawn at each lease,
 * so a receipt from an earlier delivery of the same message never matches a later lease.
 */
export function encodeReceipt(messageId: string, leaseToken: string): string {
  return `${messageId}.${leaseToken}`;
}

/** Parses a receipt; a malformed one is BAD_USER_INPUT. */
export function decodeReceipt(receipt: unknown): Receipt {
  const match = typeof receipt === 'string' ? RECEIPT_PATTERN.exec(receipt) : null;
  if (match === null) throw badInput('receipt is malformed: pass the receipt a delivery returned');
  return { messageId: match[1]!, leaseToken: match[2]! };
}
