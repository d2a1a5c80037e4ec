import type { ContractMessage } from '../contract.ts';

export type {
  ArchiveFilter,
  ArchivedMessage,
  ArchivedMessagePage,
  MessageFilter,
  MessageState,
  Queue,
  QueueConfig,
  QueueHistoryCounts,
  QueueHistoryPoint,
  QueueStats,
  CatchUp,
  RateLimit,
  ReplayJob,
  ReplayJobKind,
  ReplayJobState,
  Schedule,
  ScheduledMessage,
  ScheduleInput,
  SendInput,
  WaitingCounts,
  WaitingReason,
} from '../contract.ts';

/** A message as the engine holds it: the contract's fields and the engine's own. */
export interface Message extends ContractMessage {
  dedupKey: string | null;
  groupKey: string | null;
  deadLetteredAt: Date | null;
  /** When its lease ends; null unless LEASED. */
  leaseExpiresAt: Date | null;
}

/** A leased message and the receipt that acks, nacks or extends it. */
export interface Delivery {
  receipt: string;
  leaseExpiresAt: Date;
  message: Message;
}
