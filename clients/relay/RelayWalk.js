// The operations of clients/relay-cache.mjs, with the selections docs/clients.md shows, for
// relay-compiler (it writes their artifacts to __generated__/). Only the compiler reads
// this file; it is never run.
/* global graphql */

graphql`
  mutation RelayWalkRegisterMutation($i: RegisterInput!) {
    register(input: $i) { id }
  }
`;

graphql`
  mutation RelayWalkLoginMutation($i: LoginInput!) {
    login(input: $i) { accessToken user { id email name updatedAt } }
  }
`;

graphql`
  query RelayWalkMeQuery {
    me { id email name updatedAt profile { id name bio profilePhotoPath updatedAt } }
  }
`;

graphql`
  query RelayWalkMyProfileQuery {
    myProfile { id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt } }
  }
`;

graphql`
  query RelayWalkProfileQuery($userId: Int!) {
    profile(userId: $userId) { id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt } }
  }
`;

graphql`
  query RelayWalkSessionsQuery {
    mySessions { id current createdAt lastUsedAt expiresAt userAgent ip }
  }
`;

graphql`
  mutation RelayWalkUpdateMeMutation($i: UpdateMeInput!) {
    updateMe(input: $i) { id email name updatedAt profile { id name updatedAt } }
  }
`;

graphql`
  mutation RelayWalkUpdateProfileMutation($i: ProfileInput!) {
    updateProfile(input: $i) { id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt } }
  }
`;

graphql`
  mutation RelayWalkUploadMutation($file: Upload!) {
    uploadProfilePhoto(file: $file) { id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt } }
  }
`;

graphql`
  mutation RelayWalkDeletePhotoMutation {
    deleteProfilePhoto { id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt } }
  }
`;

graphql`
  mutation RelayWalkDeleteProfileMutation {
    deleteProfile
  }
`;

graphql`
  mutation RelayWalkRevokeSessionMutation($id: ID!) {
    revokeSession(id: $id)
  }
`;

graphql`
  mutation RelayWalkChangePasswordMutation($i: ChangePasswordInput!) {
    changePassword(input: $i)
  }
`;
