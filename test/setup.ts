// aws-local-stepfunctions 3 uses Promise.withResolvers (Node 22+); the machine runs Node 20.
import '#local/polyfills';
