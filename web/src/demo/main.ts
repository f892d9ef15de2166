// The team-chat demo served at /.
import { Parley } from '@parley/client';

const root = document.getElementById('app');
if (root) root.textContent = `Parley ${typeof Parley}`;
