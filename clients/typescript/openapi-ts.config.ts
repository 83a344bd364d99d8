// The SDK the tests generate from Darkroom's published document: types, one function per
// operation, and the Fetch API client bundled into the output (nothing to install at run time).
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: '../../openapi/openapi.json',
  output: 'src/generated',
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
});
