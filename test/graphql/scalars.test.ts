import { describe, expect, it } from 'vitest';
import { DateTimeScalar } from '../../src/graphql/scalars.ts';

describe('DateTime output', () => {
  it('is toISOString for every instant, however they alternate (the memo of recent instants)', () => {
    const instants = [0, 1, 1, 2, 1, 2, 3, 3, 2, 1e12, -1e12, 8.64e15, -8.64e15, 253402300800000];
    for (let i = 0; i < 2_000; i++) {
      instants.push((i % 4) * 1000 + (i % 3), Math.floor(Math.sin(i) * 1e13));
    }
    for (const time of instants) {
      const date = new Date(time);
      expect(DateTimeScalar.serialize(date)).toBe(date.toISOString());
    }
  });

  it('refuses what is not a valid Date', () => {
    for (const value of [new Date(NaN), '2030-01-01T00:00:00Z', 5, null]) {
      expect(() => DateTimeScalar.serialize(value)).toThrow(TypeError);
    }
  });
});
