enum KeyringPlaceholder {}
