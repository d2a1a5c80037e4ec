import type { ScopeAction } from '../../auth/index.ts';
import { mayAccess } from '../authorization.ts';
import type { Viewer } from '../authorization.ts';

/** GraphQL enum ScopeAction → the scope action it names. */
const SCOPE_ACTION_OF: Readonly<Record<string, ScopeAction>> = {
  READ: 'read',
  SEND: 'send',
  RECEIVE: 'receive',
  ADMIN: 'admin',
};

/** Field resolvers of type Viewer. */
export const ViewerResolvers = {
  /** The same check every operation makes (authorization.ts), asked for one action and queue. */
  allows(viewer: Viewer, args: { action: string; queue: string }): boolean {
    const action = SCOPE_ACTION_OF[args.action];
    return action !== undefined && mayAccess(viewer.access, action, args.queue);
  },
};
