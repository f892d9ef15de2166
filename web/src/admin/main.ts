// The operator's console served at /admin.
const root = document.getElementById('app');
if (root) root.textContent = 'Parley console';
