-- Who may do what. Every account is a `user`; `admin` is granted only by the operator with
-- `app admin grant EMAIL`, never through the API.
ALTER TABLE users
    ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
