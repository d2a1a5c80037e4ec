import { describe, expect, it } from 'vitest';
import { formatSeconds } from '../../src/dashboard/format.ts';
import { FilterInputError, toApiFilter } from '../../src/dashboard/message-filter.ts';
import { parseRoute, routeHash } from '../../src/dashboard/router.ts';
import type { Route } from '../../src/dashboard/router.ts';

describe("the dashboard's addresses", () => {
  it('reads back every page from its address, queue names and filters included', () => {
    const routes: Route[] = [
      { page: 'overview' },
      { page: 'queue', queue: 'orders.eu-1' },
      { page: 'messages', queue: 'orders.dlq', filter: {} },
      {
        page: 'messages',
        queue: 'orders',
        filter: { state: 'DELAYED', payload: '{"region": "eu & co"}', groupKey: 'g/1?x=#' },
      },
      { page: 'message', id: '42' },
      { page: 'dead-letters' },
      { page: 'schedules' },
      { page: 'flow-limits' },
      { page: 'replay-jobs' },
    ];
    for (const route of routes) expect(parseRoute(routeHash(route))).toEqual(route);
  });

  it('shows the overview for an address it does not know', () => {
    expect(parseRoute('#/nowhere/at/all')).toEqual({ page: 'overview' });
    expect(parseRoute('')).toEqual({ page: 'overview' });
  });
});

describe("the message browser's filter", () => {
  it('sends JSON objects, keys and local times as the API takes them', () => {
    const local = '2026-12-01T10:00:00';
    expect(
      toApiFilter({
        state: 'READY',
        payload: '{"region":"eu"}',
        dedupKey: 'd-1',
        createdAfter: local,
      }),
    ).toEqual({
      state: 'READY',
      filter: {
        payload: { region: 'eu' },
        dedupKey: 'd-1',
        createdAfter: new Date(local).toISOString(),
      },
    });
    expect(toApiFilter({})).toEqual({ state: null, filter: null });
  });

  it('refuses a payload filter that is not a JSON object, naming the field, before anything is sent', () => {
    expect(() => toApiFilter({ payload: '{region: eu}' })).toThrow(FilterInputError);
    expect(() => toApiFilter({ headers: '[1, 2]' })).toThrow('headers: must be a JSON object');
    expect(() => toApiFilter({ createdBefore: 'yesterday' })).toThrow('createdBefore');
  });
});

describe("the dashboard's durations", () => {
  it('reads in their two largest units, dropping a zero second unit', () => {
    expect(formatSeconds(null)).toBe('—');
    expect(formatSeconds(2.25)).toBe('2.3 s');
    expect(formatSeconds(0.0042)).toBe('4.2 ms');
    expect(formatSeconds(45)).toBe('45 s');
    expect(formatSeconds(200)).toBe('3 min 20 s');
    expect(formatSeconds(300)).toBe('5 min');
    expect(formatSeconds(1_209_600)).toBe('14 d');
    expect(formatSeconds(90_061)).toBe('1 d 1 h');
  });
});
