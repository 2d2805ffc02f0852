// The Kubernetes helpers live in testkit/ (shared with the bench).
export * from '../../testkit/kube.js';
