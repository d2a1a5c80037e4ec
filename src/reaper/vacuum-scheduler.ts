import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';
import { vacuumMessagesIfBehind } from './vacuum.ts';

/** Options for {@link VacuumScheduler}. */
export interface VacuumSchedulerOptions extends MaintenanceServiceOptions {
  /** Dead row versions that make the leader vacuum. */
  deadTuples: number;
  /** Told of each vacuum, with the dead row versions it found. */
  onVacuumed: (deadTuples: number) => void;
}

/**
 * Vacuums the messages table when autovacuum has fallen behind (see vacuum.ts), on its own
 * loop so that a vacuum of seconds on a big table never holds up the lease rescuer.
 */
export class VacuumScheduler extends PeriodicService {
  private readonly options: VacuumSchedulerOptions;

  constructor(options: VacuumSchedulerOptions) {
    super(options.logger, options.intervalMs, 'vacuum of the messages table failed');
    this.options = options;
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    const check = await vacuumMessagesIfBehind(this.options.maintenance, this.options.deadTuples);
    if (!check.vacuumed) return;
    this.logger.info({ deadTuples: check.deadTuples }, 'messages table vacuumed');
    this.options.onVacuumed(check.deadTuples);
  }
}
