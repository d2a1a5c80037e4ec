import type { ContractMessage } from '../contract.ts';

export type {
  MessageState,
  Queue,
  QueueConfig,
  QueueStats,
  SendInput,
  WaitingCounts,
  WaitingReason,
  CatchUp,
  RateLimit,
  Schedule,
  ScheduleInput,
  ScheduledMessage,
} from '../contract.ts';

/** A message as the engine holds it: the contract's fields and the engine's own. */
export interface Message extends ContractMessage {
  dedupKey: string | null;
  groupKey: string | null;
  deadLetteredAt: Date | null;
}

/** A leased message and the receipt that acks, nacks or extends it. */
export interface Delivery {
  receipt: string;
  leaseExpiresAt: Date;
  message: Message;
}
