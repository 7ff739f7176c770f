import { RecentIds } from './recent-ids';

describe('RecentIds', () => {
  test('remembers up to its capacity and forgets the oldest first', () => {
    const ids = new RecentIds(3);
    for (const id of ['a', 'b', 'c']) ids.add(id);
    expect(['a', 'b', 'c'].map((id) => ids.has(id))).toEqual([true, true, true]);
    ids.add('d');
    expect(ids.has('a')).toBe(false);
    expect(ids.size).toBe(3);
    // Adding again refreshes: 'b' is now the newest, so 'c' goes next.
    ids.add('b');
    ids.add('e');
    expect(['b', 'c', 'd', 'e'].map((id) => ids.has(id))).toEqual([true, false, true, true]);
  });
});
