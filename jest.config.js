/** One Jest configuration for the whole monorepo; @swc/jest because ts-jest does not support TypeScript 7. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testMatch: ['**/src/**/*.test.ts', '**/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/.*\\.d\\.ts$'],
  globalSetup: require('path').join(__dirname, 'packages/testkit/dist/global-setup.js'),
  testTimeout: 60000,
};
