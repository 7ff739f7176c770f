import { JsonSchema, StorableString } from './json';

describe('StorableString', () => {
  it('refuses a lone UTF-16 surrogate (jsonb refuses its escape), in values and keys, and takes a whole pair', () => {
    for (const s of ['\ud800', 'a\udbffb', '\udc00', 'x\udfff', '\ude00\ud83d']) expect(StorableString.safeParse(s).success).toBe(false);
    expect(JsonSchema.safeParse({ s: '\ud800' }).success).toBe(false);
    expect(JsonSchema.safeParse({ ['\ud800']: 1 }).success).toBe(false);
    expect(StorableString.safeParse('emoji \ud83d\ude00 and text').success).toBe(true);
    expect(StorableString.safeParse('a\u0000b').success).toBe(false);
  });
});
