/**
 * `compute` with its last two keys remembered (compared with ===): for values that repeat in
 * runs, such as the timestamps of a batch's rows, where a map would cost more than it saves.
 * A hit on the older key makes it the recent one.
 */
export function lastTwoMemo<K, V>(compute: (key: K) => V): (key: K) => V {
  let recent: { key: K; value: V } | undefined;
  let older: { key: K; value: V } | undefined;
  return (key) => {
    if (recent !== undefined && recent.key === key) return recent.value;
    if (older !== undefined && older.key === key) {
      [older, recent] = [recent, older];
      return recent.value;
    }
    older = recent;
    recent = { key, value: compute(key) };
    return recent.value;
  };
}
