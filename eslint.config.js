// ESLint flat config: type-aware typescript-eslint, the module boundaries of DESIGN.md and
// STYLE.md, and Prettier owning the formatting. Boundaries:
//   db ← queue ← {reaper, auth, graphql} ← server ← cli;  contract.ts ← {queue, client}
// - only the SQL homes (src/queue/sql/, src/auth/sql/) import the database layer's query
//   pieces (src/db/statement.ts, src/db/prepared-statements.ts), and only their own module
//   imports a home;
// - other modules reach the engine through its facade, src/queue/index.ts; graphql, reaper
//   and auth never import src/db (data only through the engine, or auth's SQL home);
// - src/client (HTTP client + worker) imports no engine, no database layer, no pg, no kysely;
// - src/dashboard (the browser app) talks to the service over its public API only: it imports
//   nothing of the service but the contract's types and the scope rule (src/auth/scopes.ts,
//   plain code), and nothing
//   of the service imports it (scripts/build-dashboard.ts bundles it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';

const MODULES = [
  './src/db',
  './src/queue',
  './src/reaper',
  './src/auth',
  './src/graphql',
  './src/server',
  './src/client',
  './src/dashboard',
  './src/cli.ts',
];

/** Every module but `allowed`. */
const allBut = (...allowed) => MODULES.filter((m) => !allowed.includes(m));

/** Imports each module may not make: `target` may not import from `from`. */
const boundaries = [
  { target: './src/db', from: allBut('./src/db') },
  // The contract's types import nothing, so the HTTP client that uses them loads nothing.
  { target: './src/contract.ts', from: MODULES },
  { target: './src/queue', from: allBut('./src/db', './src/queue') },
  {
    target: './src/reaper',
    from: allBut('./src/queue', './src/reaper'),
  },
  // Tokens and scopes sit on the database only (their own SQL home); the GraphQL layer
  // enforces them.
  { target: './src/auth', from: allBut('./src/db', './src/auth') },
  {
    target: './src/graphql',
    from: ['./src/db', './src/reaper', './src/server', './src/client', './src/cli.ts'],
  },
  { target: './src/server', from: ['./src/cli.ts'] },
  // The HTTP client and the worker: the contract's types and nothing of the service.
  { target: './src/client', from: allBut('./src/client') },
  { target: './src/dashboard', from: allBut('./src/dashboard', './src/auth', './src/contract.ts') },
  { target: './src/dashboard', from: './src/auth', except: ['./scopes.ts'] },
  { target: allBut('./src/dashboard'), from: './src/dashboard' },
];

/** Imports of inner files that only their own module may make. */
const QUEUE_INNER = {
  regex: '^(\\.\\./)+queue/(?!index\\.ts$)',
  message: 'Import the engine through src/queue/index.ts.',
};
const DB_QUERY_PIECES = {
  regex: '(^|/)db/(statement|prepared-statements)\\.ts$',
  message: 'Only the SQL homes (src/queue/sql/, src/auth/sql/) build statements.',
};
const AUTH_SQL_HOME = {
  regex: '(^|/)auth/sql/',
  message: 'Only src/auth reads its SQL home; use src/auth/index.ts.',
};

/** no-restricted-imports with these patterns (and, for the client, no pg or kysely). */
const restrict = (patterns, paths = []) => ['error', { patterns, paths }];

const NO_DATABASE_DRIVER = [
  { name: 'pg', message: 'src/client speaks HTTP only: no pg.' },
  { name: 'kysely', message: 'src/client speaks HTTP only: no kysely.' },
];

export default tseslint.config(
  { ignores: ['node_modules/', '.holdline-data/', 'coverage/', 'dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'import-x/no-restricted-paths': ['error', { zones: boundaries }],
      'no-restricted-imports': restrict([QUEUE_INNER, DB_QUERY_PIECES, AUTH_SQL_HOME]),
    },
  },
  // Inside the engine its inner files are its own; the SQL home alone builds statements.
  { files: ['src/queue/**'], rules: { 'no-restricted-imports': restrict([DB_QUERY_PIECES]) } },
  {
    files: ['src/auth/**'],
    rules: { 'no-restricted-imports': restrict([QUEUE_INNER, DB_QUERY_PIECES]) },
  },
  {
    files: ['src/queue/sql/**', 'src/auth/sql/**', 'src/db/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['src/client/**'],
    rules: {
      'no-restricted-imports': restrict(
        [QUEUE_INNER, DB_QUERY_PIECES, AUTH_SQL_HOME],
        NO_DATABASE_DRIVER,
      ),
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  {
    files: ['src/dashboard/**'],
    rules: {
      'no-restricted-imports': restrict([
        { group: ['node:*'], message: 'src/dashboard runs in the browser.' },
      ]),
    },
  },
  { files: ['*.js', 'bin/*.js'], ...tseslint.configs.disableTypeChecked },
  prettier,
);
