/**
 * One Jest configuration for the whole monorepo, in two projects: `unit` (pure and integration
 * tests beside the code, run in parallel) and `e2e` (apps started as real processes, run one file
 * at a time). @swc/jest transforms TypeScript: ts-jest does not support TypeScript 7.
 */
const path = require('path');
// ESM-only dependencies of Fastify's plugins: Node loads them with require(esm); Jest cannot, so
// they are compiled to CommonJS.
const ESM_ONLY = ['content-disposition', 'cookie'];
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }],
  [`/node_modules/(${ESM_ONLY.join('|')})/.+\\.js$`]: ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
};
const common = {
  testEnvironment: 'node',
  transform,
  rootDir: __dirname,
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY.join('|')})/)`],
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
  globalSetup: path.join(__dirname, 'packages/testkit/dist/global-setup.js'),
};
module.exports = {
  testTimeout: 60000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/packages/**/src/**/*.test.ts', '<rootDir>/apps/**/src/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
