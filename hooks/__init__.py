"""wikibot.hooks: git's two hook roles for wiki repositories, and the event pipeline behind them.

- pre-receive (`pre_receive.PushPolicy`): what any write may change, checked before a ref moves;
- post-receive (`post_receive.Publisher`): each ref that moved becomes a durable event, and
  `post_commit` does the same for commits made in a worktree (web edits);
- the pipeline: the queue, the dispatcher that hands events to consumers in the worker, the
  built-in consumers, and `reconcile`, which heals events that were missed.

Kept import-light on purpose: the post-commit hook script imports from here on every web edit.
"""
