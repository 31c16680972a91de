// Two layers: fast unit tests next to the code, and e2e scenarios on real clusters and servers.
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] };
const moduleNameMapper = {
  '^@openrds/common$': '<rootDir>/common/src/index.ts',
  '^@openrds/common/dist/(.*?)(\\.js)?$': '<rootDir>/common/src/$1',
};
module.exports = {
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  projects: [
    {
      displayName: 'unit',
      rootDir: __dirname,
      testMatch: ['<rootDir>/{common,agent,repo-server}/src/**/*.test.ts'],
      transform,
      moduleNameMapper,
      testEnvironment: 'node',
    },
    {
      displayName: 'e2e',
      rootDir: __dirname,
      testMatch: ['<rootDir>/e2e/src/**/*.e2e.ts'],
      transform,
      moduleNameMapper,
      testEnvironment: 'node',
      globalSetup: '<rootDir>/e2e/src/harness/global-setup.ts',
      testTimeout: 300000,
    },
  ],
};
