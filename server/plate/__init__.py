"""The door plate (一户一码): the public page `/h/<code>` a household's plate QR opens, its
second factor (the last 4 digits of the registered phone) that shows the payments, and
what that factor unlocks: the "money sent" text messages and Web Push notices.

- `pages`: the routes (the page, a tree's photo, the unlock form, the text-message switch);
- `second_factor`: the unlock, its limits and lockouts, and the push token it allows;
- `timeline`: the money earned and paid, newest first, and the payments once unlocked;
- `tree_map`: the household's trees drawn from their own coordinates;
- `blueprints`: what `create_app` registers.
"""
