import type { Schedule } from '../../queue/index.ts';

/** Field resolvers of type Schedule: the message's fields sit on the schedule itself. */
export const ScheduleResolvers = {
  payload: (schedule: Schedule): unknown => schedule.message.payload,
  headers: (schedule: Schedule): unknown => schedule.message.headers,
  priority: (schedule: Schedule): number => schedule.message.priority,
  groupKey: (schedule: Schedule): string | null => schedule.message.groupKey,
};
